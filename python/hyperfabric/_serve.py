"""A node for ``hyperfabric.benchmark`` in a process of its own: it prints one JSON line
with its address, answers pings (in Rust), and reads every byte of every message it
receives in Python (a numpy sum over a uint64 view, as ``python_peers.py``'s receiver).

``python -m hyperfabric._serve --config FILE --node ID [--transport T] [--max-seconds S]``
A message named ``hf-sync`` is answered with one named ``hf-done`` once every message
before it was read; one named ``hf-quit`` ends the process."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import _native
from .errors import HyperFabricError, Timeout


def _read_all(m: object, np: object) -> int:
    n = len(m)  # type: ignore[arg-type]
    if np is not None and n % 8 == 0:
        return int(np.frombuffer(m, dtype=np.uint64).sum())  # type: ignore[attr-defined]
    return sum(memoryview(m))  # type: ignore[arg-type]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="fabric file")
    ap.add_argument("--node", required=True, help="the node this process runs")
    ap.add_argument("--transport", default="auto", choices=("auto", "tcp", "shm"), help="link transports")
    ap.add_argument("--max-seconds", type=float, default=600.0, help="exit after this long whatever happens")
    a = ap.parse_args()
    try:
        import numpy as np
    except ImportError:  # the byte-wise sum is slower but reads every byte too
        np = None  # type: ignore[assignment]
    with open(a.config) as f:
        text = f.read()
    node = _native.Node.start(text, a.config, a.node, listen="127.0.0.1:0", transport=a.transport)
    print(json.dumps({"addr": node.local_addr, "node": node.node_id}), flush=True)
    parent, deadline = os.getppid(), time.monotonic() + a.max_seconds
    checksum = 0
    while time.monotonic() < deadline and os.getppid() == parent:
        try:
            msgs = node.recv_many(16, 0.2)
        except Timeout:
            continue
        msgs.reverse()
        while msgs:
            # One at a time, in arrival order, each dropped once read: a shared payload's
            # slot goes back to the sender's pool at once.
            m = msgs.pop()
            if m.name == "hf-quit":
                node.shutdown()
                return 0
            if m.name == "hf-sync":
                try:
                    node.send(m.source, b"done", _native.SendOpts("control_message", name="hf-done"))
                except HyperFabricError as e:
                    # The measuring process may already have its reply and be gone (it got the
                    # message before our send saw the acknowledgement).
                    print(f"hf-done to {m.source}: {e}", file=sys.stderr)
                continue
            checksum ^= _read_all(m, np)
            del m
    node.shutdown()
    print(json.dumps({"checksum": checksum}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
