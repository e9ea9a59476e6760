"""Benchmarks on real nodes.

``python -m hyperfabric.benchmark [--json]`` starts a local two-node fabric by itself (this
process runs ``node-a``; ``node-b`` runs in a child Python process, ``hyperfabric._serve``)
and measures, as ``../shared/peers/python_peers.py`` measures pyzmq:

* ``latency``: 64-byte ping-pong, one Python call per round trip, timed in Python with
  ``perf_counter_ns``; one-way = half the round trip (``median_ns``, ``p99_ns``).
  ``latency_batched``: the same pings in batches of 1000 per call, timed by Rust.
* ``throughput``: a stream of 1 MiB numpy float32 arrays (``send_many``, 8 in flight);
  the receiver reads every byte of every array in Python (numpy sum over a uint64 view);
  the clock stops when the receiver said it read them all. GB/s = 1e9 bytes/s.

``PerformanceBenchmark`` runs the guide's latency, throughput and concurrent tests on a
``HyperFabricProtocol``'s nodes and ``generate_report()`` summarises them.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

from . import _native
from .errors import Timeout

LOCAL_FABRIC = """\
[fabric]
name = "py-bench"
profile = "{profile}"

[[nodes]]
id = "node-a"
hardware = "cpu-cluster"
listen = "{a_addr}"
host = "localhost"
zone = "local"

[[nodes]]
id = "node-b"
hardware = "cpu-cluster"
listen = "{b_addr}"
host = "localhost"
zone = "local"

[[links]]
between = ["node-a", "node-b"]
bandwidth_gbps = 100
latency_ns = 1000

[[zones]]
id = "local"
type = "loopback"
isolation = "none"
"""


def _percentile(sorted_ns: Sequence[int], q: float) -> int:
    """Nearest-rank percentile."""
    if not sorted_ns:
        return 0
    k = max(0, min(len(sorted_ns) - 1, int(round(q * len(sorted_ns) + 0.5)) - 1))
    return int(sorted_ns[k])


def _figures(samples: List[int]) -> Dict[str, Any]:
    s = sorted(samples)
    return {
        "count": len(s), "min_ns": s[0], "median_ns": _percentile(s, 0.5), "p99_ns": _percentile(s, 0.99),
        "p999_ns": _percentile(s, 0.999), "max_ns": s[-1], "mean_ns": statistics.fmean(s),
    }


class LocalFabric:
    """``node-a`` here, ``node-b`` in a child process, over ``transport``."""

    def __init__(self, profile: str, transport: str = "auto") -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="hf-py-bench-")
        # node-a first (node-b's address a placeholder nothing listens on), then node-b
        # knowing node-a's port, then node-a told node-b's.
        placeholder = "127.255.255.254:1"
        text = LOCAL_FABRIC.format(profile=profile, a_addr="127.0.0.1:0", b_addr=placeholder)
        self.node = _native.Node.start(text, "<hyperfabric.benchmark>", "node-a", listen="127.0.0.1:0", transport=transport)
        cfg = os.path.join(self.dir.name, "fabric.toml")
        with open(cfg, "w") as f:
            f.write(LOCAL_FABRIC.format(profile=profile, a_addr=self.node.local_addr, b_addr=placeholder))
        self.child = subprocess.Popen(
            [sys.executable, "-m", "hyperfabric._serve", "--config", cfg, "--node", "node-b", "--transport", transport],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )
        assert self.child.stdout is not None
        line = self.child.stdout.readline()
        try:
            addr = json.loads(line)["addr"]
        except (ValueError, KeyError):
            self.close()
            raise RuntimeError(f"the benchmark's node-b did not start (it said {line!r})") from None
        self.node.register_nodes(LOCAL_FABRIC.format(profile=profile, a_addr=self.node.local_addr, b_addr=addr))

    def close(self) -> None:
        node = getattr(self, "node", None)
        if node is not None:
            try:
                node.send("node-b", b"q", _native.SendOpts("control_message", name="hf-quit", timeout_s=2.0))
            except Exception:
                pass
            node.shutdown()
        try:
            self.child.wait(5)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
        self.dir.cleanup()

    def __enter__(self) -> "LocalFabric":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def latency(node: Any, dst: str, size: int = 64, iterations: int = 10_000, warmup: int = 1_000) -> Dict[str, Any]:
    """One Python call per ping-pong; one-way = half the Python-timed round trip."""
    node.ping(dst, size=size, count=max(1, warmup), timeout_s=2.0)
    ping, clock = node.ping1, time.perf_counter_ns
    samples = []
    for _ in range(iterations):
        t0 = clock()
        ping(dst, size, 2.0)
        samples.append((clock() - t0) // 2)
    f = _figures(samples)
    f.update(size_bytes=size, method="one Python call per round trip, timed in Python; one-way = half")
    return f


def latency_batched(node: Any, dst: str, size: int = 64, iterations: int = 10_000) -> Dict[str, Any]:
    samples: List[int] = []
    while len(samples) < iterations:
        d = node.ping(dst, size=size, count=min(1000, iterations - len(samples)), timeout_s=2.0, samples=True)
        samples.extend(d["samples_ns"])
    f = _figures(samples)
    f.update(size_bytes=size, transport=d["transport"], method="pings in batches of 1000 per call, timed by Rust")
    return f


def _sync(node: Any, dst: str, timeout_s: float = 30.0) -> None:
    """Returns once ``dst`` read every message sent before (it answers ``hf-sync``)."""
    node.send(dst, b"s", _native.SendOpts("control_message", name="hf-sync"))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            m = node.recv(1.0)
        except Timeout:
            continue
        if m.name == "hf-done":
            return
    raise Timeout(f"{dst} did not confirm it read the stream", what="stream drain", after_s=timeout_s)


def throughput(node: Any, dst: str, size: int = 1 << 20, seconds: float = 3.0, inflight: int = 8) -> Dict[str, Any]:
    """A stream of ``size``-byte numpy float32 arrays; the receiver reads every byte."""
    import numpy as np

    arr = np.random.rand(size // 4).astype(np.float32)
    opts = _native.SendOpts("tensor")
    batch = [arr] * 64
    node.send_many(dst, batch[:16], opts, inflight)  # warm-up: connection, pools, caches
    _sync(node, dst)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += node.send_many(dst, batch, opts, inflight)["count"]
    _sync(node, dst)
    elapsed = time.perf_counter() - t0
    return {
        "size_bytes": arr.nbytes, "messages": n, "seconds": elapsed, "inflight": inflight,
        "gb_per_s": n * arr.nbytes / elapsed / 1e9,
        "receiver": "reads every byte (numpy sum over a uint64 view, in Python)",
    }


def run_local(seconds: float, iterations: int, transport: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {"python": sys.version.split()[0], "transport_choice": transport}
    with LocalFabric("low_latency", transport) as lf:
        out["latency"] = latency(lf.node, "node-b", 64, iterations)
        out["latency_batched"] = latency_batched(lf.node, "node-b", 64, iterations)
    with LocalFabric("high_throughput", transport) as lf:
        out["throughput"] = throughput(lf.node, "node-b", 1 << 20, seconds)
    return out


class PerformanceBenchmark:
    """The guide's benchmark suite on a protocol's real nodes (``source`` must run in this
    process; ``destination`` anywhere on the fabric)."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.results: Dict[str, Any] = {}

    async def run_latency_test(self, source: str, destination: str, packet_sizes: Sequence[int] = (64, 1024, 65536),
                               iterations: int = 1000) -> Dict[str, Any]:
        node = self.protocol.node(source)
        res = {}
        for size in packet_sizes:
            d = await asyncio.get_running_loop().run_in_executor(
                None, lambda s=size: node.ping(destination, size=s, count=iterations, warmup=min(100, iterations), timeout_s=2.0))
            res[int(size)] = {k: d[k] for k in ("median_ns", "p99_ns", "p999_ns", "mean_ns", "min_ns", "max_ns", "loss_pct", "transport")}
        self.results["latency"] = res
        return res

    async def run_throughput_test(self, source: str, destination: str, data_sizes: Sequence[int] = (1024, 65536, 1 << 20),
                                  messages: int = 64, inflight: int = 8) -> Dict[str, Any]:
        """Streams ``messages`` messages per size (sent, acknowledged end to end)."""
        res = {}
        for size in data_sizes:
            buf = bytearray(os.urandom(int(size)))
            d = await asyncio.get_running_loop().run_in_executor(
                None, lambda b=buf: self.protocol.send_many(source, destination, [b] * messages, inflight=inflight))
            res[int(size)] = {"messages": d["count"], "bytes": d["bytes"], "seconds": d["seconds"],
                              "gb_per_s": d["bytes"] / d["seconds"] / 1e9 if d["seconds"] else 0.0}
        self.results["throughput"] = res
        return res

    async def run_concurrent_test(self, source: str, destinations: Sequence[str], size: int = 65536,
                                  messages: int = 32) -> Dict[str, Any]:
        """One stream per destination at once, each in a thread of its own (the GIL is
        released while bytes move)."""
        buf = bytearray(os.urandom(size))
        out: Dict[str, Any] = {}
        errors: List[BaseException] = []

        def one(dst: str) -> None:
            try:
                out[dst] = self.protocol.send_many(source, dst, [buf] * messages)
            except BaseException as e:  # reported below
                errors.append(e)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=one, args=(d,)) for d in destinations]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        if errors:
            raise errors[0]
        elapsed = time.perf_counter() - t0
        total = sum(d["bytes"] for d in out.values())
        res = {"streams": len(destinations), "bytes": total, "seconds": elapsed,
               "aggregate_gb_per_s": total / elapsed / 1e9 if elapsed else 0.0, "per_stream": out}
        self.results["concurrent"] = res
        return res

    def generate_report(self) -> Dict[str, Any]:
        """Everything measured so far, with a one-line summary per test."""
        summary = []
        for size, d in self.results.get("latency", {}).items():
            summary.append(f"latency {size} B: median {d['median_ns']} ns, p99 {d['p99_ns']} ns ({d['transport']})")
        for size, d in self.results.get("throughput", {}).items():
            summary.append(f"throughput {size} B: {d['gb_per_s']:.3f} GB/s")
        if "concurrent" in self.results:
            c = self.results["concurrent"]
            summary.append(f"concurrent {c['streams']} streams: {c['aggregate_gb_per_s']:.3f} GB/s")
        return {"results": self.results, "summary": summary}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hyperfabric.benchmark", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object (figures in ns and GB/s)")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds of the 1 MiB stream")
    ap.add_argument("--iterations", type=int, default=10_000, help="timed 64 B ping-pongs")
    ap.add_argument("--transport", default="auto", choices=("auto", "tcp", "shm"), help="link transports")
    a = ap.parse_args(argv)
    if a.seconds <= 0 or a.iterations <= 0:
        ap.error("--seconds and --iterations must be > 0")
    out = run_local(a.seconds, a.iterations, a.transport)
    if a.json:
        print(json.dumps(out))
    else:
        l, lb, t = out["latency"], out["latency_batched"], out["throughput"]
        print(f"64 B one-way latency (Python call per ping): median {l['median_ns']} ns, p99 {l['p99_ns']} ns")
        print(f"64 B one-way latency (batched, Rust-timed):  median {lb['median_ns']} ns, p99 {lb['p99_ns']} ns ({lb['transport']})")
        print(f"1 MiB numpy stream, receiver reads every byte: {t['gb_per_s']:.3f} GB/s ({t['messages']} arrays)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
