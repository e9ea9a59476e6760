"""The Python API against a node that `hfabric serve` runs in another process: pings and
sends go over the fabric's transports (shared memory on this host, or TCP when forced)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from hyperfabric import HyperFabricProtocol

from conftest import REPO

FABRIC = """\
[fabric]
name = "served"
profile = "high_throughput"

[[nodes]]
id = "py-a"
hardware = "cpu-cluster"
listen = "127.0.0.1:0"
host = "localhost"

[[nodes]]
id = "served-b"
hardware = "cpu-cluster"
listen = "127.255.255.254:1"
host = "localhost"

[[links]]
between = ["py-a", "served-b"]
bandwidth_gbps = 100
latency_ns = 1000
"""


def hfabric() -> str:
    for p in (os.environ.get("HFABRIC"), os.path.join(REPO, "target", "release", "hfabric"), shutil.which("hfabric")):
        if p and os.path.exists(p):
            return p
    pytest.skip("no hfabric binary (cargo build --release -p hfabric)")


@pytest.mark.parametrize("transport", ["auto", "tcp"])
def test_send_and_ping_a_served_node(tmp_path, transport):
    cfg = tmp_path / "fabric.toml"
    cfg.write_text(FABRIC)
    serve = subprocess.Popen(
        [hfabric(), "serve", "--json", "--config", str(cfg), "--node", "served-b", "--listen", "127.0.0.1:0",
         "--transport", transport],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_LOG": "warn"},
    )
    try:
        assert serve.stdout is not None
        ready = json.loads(serve.stdout.readline())
        with HyperFabricProtocol.from_config(str(cfg), node="py-a", transport=transport) as p:
            p.set_node_address("served-b", ready["addr"])
            ping = p.ping_sync("py-a", "served-b", count=20)
            assert ping.received == 20
            assert ping.transport == ("tcp" if transport == "tcp" else "shm")
            data = os.urandom(3 << 20)
            r = p.send_data_sync("py-a", "served-b", data)
            assert r.bytes == len(data) and r.path == ["py-a", "served-b"]
            health = p.check_node_health("served-b")
            assert health["healthy"] and health["uptime_seconds"] > 0
    finally:
        serve.terminate()
        serve.wait(10)


def test_a_peer_that_died_raises_instead_of_hanging(tmp_path):
    from hyperfabric import HyperFabricError

    cfg = tmp_path / "fabric.toml"
    cfg.write_text(FABRIC)
    serve = subprocess.Popen(
        [hfabric(), "serve", "--json", "--config", str(cfg), "--node", "served-b", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_LOG": "error"},
    )
    assert serve.stdout is not None
    ready = json.loads(serve.stdout.readline())
    with HyperFabricProtocol.from_config(str(cfg), node="py-a") as p:
        p.set_node_address("served-b", ready["addr"])
        p.send_data_sync("py-a", "served-b", b"alive")
        serve.kill()
        serve.wait(10)
        with pytest.raises(HyperFabricError):
            p.send_data_sync("py-a", "served-b", os.urandom(4 << 20), timeout=3.0)
