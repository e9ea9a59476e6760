"""hyperfabric.join() from the launcher: four processes started with only RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT set (as torchrun sets them) and no fabric file form a fabric
through the rendezvous store rank 0 serves, and exchange all-to-all, byte-identical."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

WORKER = r'''
import hashlib, os, sys, time
import hyperfabric
m = hyperfabric.join(timeout=60, lease=2)
world = int(os.environ["WORLD_SIZE"])
me = m.node_id
peers = [f"rank-{r}" for r in range(world) if f"rank-{r}" != me]
until = time.monotonic() + 60
while len(m.known_nodes()) < world:
    assert time.monotonic() < until, m.known_nodes()
    time.sleep(0.05)
info = m.membership()
assert info["launch"]["source"] == "torchrun", info
assert info["etcd"] is None, info
def pattern(src, dst):
    return hashlib.sha256(f"{src}->{dst}".encode()).digest() * 4096   # 128 KiB
for p in peers:
    assert m.send(p, pattern(me, p))["bytes"] == 32 * 4096
got = {}
while len(got) < len(peers):
    msg = m.recv(timeout=60)
    got[msg.source] = bytes(msg)
for p in peers:
    assert got[p] == pattern(p, me), f"{me}: bytes from {p} differ"
assert m.ping1(peers[0]) > 0
print(f"{me} ok", flush=True)
time.sleep(1)   # the others may still be receiving from this node
m.leave()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_four_torchrun_style_processes_form_a_fabric_and_exchange_all_to_all(tmp_path):
    port, world = _free_port(), 4
    procs = []
    for rank in range(world):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RANK", "WORLD_SIZE", "MASTER_", "LOCAL_", "SLURM_", "OMPI_"))}
        env.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER], env=env, cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=120)
            outs.append((p.returncode, out.decode(errors="replace")))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, (code, out) in enumerate(outs):
        assert code == 0 and f"rank-{rank} ok" in out, f"rank {rank} ({code}):\n{out}"
