"""``PerformanceMonitor``: the guide's monitor over the fabric's own metrics.

Each sample is every in-process node's ``NodeMetrics`` (the Rust snapshot: totals, per-link
counters, queue depths, process CPU and memory), taken by a background thread at
``interval`` seconds into a bounded history. Anomalies are counter increases between
samples (failed transfers, retransmissions, protocol errors, corrupt frames) and process
figures over the thresholds."""
from __future__ import annotations

import collections
import csv
import json
import threading
import time
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional

if TYPE_CHECKING:
    from .protocol import HyperFabricProtocol

HISTORY_MAX = 3600
_COUNTERS = ("transfers_failed", "retransmitted_bytes", "protocol_errors", "corrupt_frames_dropped", "connections_rejected")


class PerformanceMonitor:
    """``start()``/``stop()`` (or a ``with`` block) sample in the background; ``collect()``
    samples once. ``thresholds``: ``cpu_percent``, ``memory_percent`` (process figures)."""

    def __init__(self, protocol: "HyperFabricProtocol", interval: float = 1.0,
                 thresholds: Optional[Dict[str, float]] = None, history: int = 600) -> None:
        if not (interval > 0):
            raise ValueError(f"interval must be > 0 seconds (got {interval})")
        if not (0 < history <= HISTORY_MAX):
            raise ValueError(f"history must be in 1..={HISTORY_MAX} samples")
        unknown = set(thresholds or {}) - {"cpu_percent", "memory_percent"}
        if unknown:
            raise ValueError(f"unknown thresholds {sorted(unknown)} (known: cpu_percent, memory_percent)")
        self.protocol = protocol
        self.interval = float(interval)
        self.thresholds = {"cpu_percent": 95.0, "memory_percent": 90.0, **(thresholds or {})}
        self.history: Deque[Dict[str, Any]] = collections.deque(maxlen=history)
        self.anomalies: Deque[Dict[str, Any]] = collections.deque(maxlen=history)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def collect(self) -> Dict[str, Any]:
        """One sample of every in-process node, checked against the previous one."""
        nodes = {}
        for nid in self.protocol.local_nodes:
            nodes[nid] = json.loads(self.protocol.node(nid).metrics_json())
        sample = {"timestamp": time.time(), "nodes": nodes}
        with self._lock:
            prev = self.history[-1] if self.history else None
            self.history.append(sample)
            for a in self._check(prev, sample):
                self.anomalies.append(a)
        return sample

    def _check(self, prev: Optional[Dict[str, Any]], cur: Dict[str, Any]) -> List[Dict[str, Any]]:
        found = []
        for nid, m in cur["nodes"].items():
            before = (prev or {}).get("nodes", {}).get(nid)
            if before is not None:
                for c in _COUNTERS:
                    delta = m["totals"].get(c, 0) - before["totals"].get(c, 0)
                    if delta > 0:
                        found.append({"node": nid, "kind": c, "increase": delta, "timestamp": cur["timestamp"]})
            for k, limit in self.thresholds.items():
                v = m["process"].get(k)
                if v is not None and v > limit:
                    found.append({"node": nid, "kind": k, "value": v, "threshold": limit, "timestamp": cur["timestamp"]})
        return found

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.collect()
            except Exception as e:  # a node shut down under us: record and stop
                self.anomalies.append({"kind": "monitor_error", "error": str(e), "timestamp": time.time()})
                return

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the monitor is already running")
        self._stop.clear()
        self.collect()
        self._thread = threading.Thread(target=self._run, name="hyperfabric-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 5)
            self._thread = None

    def __enter__(self) -> "PerformanceMonitor":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def get_metrics(self) -> Dict[str, Any]:
        """The latest sample, and per node the totals and rates since the first sample."""
        with self._lock:
            if not self.history:
                return {"samples": 0, "nodes": {}}
            first, last = self.history[0], self.history[-1]
        span = max(last["timestamp"] - first["timestamp"], 1e-9)
        nodes = {}
        for nid, m in last["nodes"].items():
            t, t0 = m["totals"], first["nodes"].get(nid, m)["totals"]
            nodes[nid] = {
                "totals": t,
                "bytes_sent_per_s": (t["bytes_sent"] - t0["bytes_sent"]) / span,
                "bytes_received_per_s": (t["bytes_received"] - t0["bytes_received"]) / span,
                "links": m["links"], "queues": m["queues"], "process": m["process"],
            }
        return {"samples": len(self.history), "span_seconds": span, "nodes": nodes}

    def detect_anomalies(self) -> List[Dict[str, Any]]:
        with self._lock:
            return list(self.anomalies)

    def export_metrics(self, path: str, format: str = "json") -> str:
        """Writes the history: ``json`` (every sample) or ``csv`` (one row per node and
        sample, the totals). Returns ``path``."""
        with self._lock:
            history = list(self.history)
        if format == "json":
            with open(path, "w") as f:
                json.dump({"samples": history, "anomalies": list(self.anomalies)}, f)
        elif format == "csv":
            with open(path, "w", newline="") as f:
                w = csv.writer(f)
                keys = sorted({k for s in history for m in s["nodes"].values() for k in m["totals"]})
                w.writerow(["timestamp", "node", *keys])
                for s in history:
                    for nid, m in s["nodes"].items():
                        w.writerow([s["timestamp"], nid, *(m["totals"].get(k, "") for k in keys)])
        else:
            raise ValueError(f"format {format!r}: expected json or csv")
        return path
