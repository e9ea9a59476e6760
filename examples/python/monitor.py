"""The guide's monitor: fabric metrics sampled in the background while traffic flows,
anomalies, and an export.

    python examples/python/monitor.py [--out metrics.json]
"""
import argparse
import os
import tempfile

from hyperfabric import HardwareType, HyperFabricProtocol, NodeSignature
from hyperfabric.monitoring import PerformanceMonitor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="where to write the metrics (default: a temporary file)")
    a = ap.parse_args()
    with HyperFabricProtocol(protocol_id="monitored") as fabric:
        fabric.register_node(NodeSignature("trainer", HardwareType.NVIDIA_A100, 200.0, 500))
        fabric.register_node(NodeSignature("storage", HardwareType.CPU_CLUSTER, 100.0, 2000))
        with PerformanceMonitor(fabric, interval=0.1) as monitor:
            for _ in range(20):
                fabric.send_data_sync("trainer", "storage", os.urandom(256 << 10))
                fabric.receive_sync("storage", timeout=5)
            monitor.collect()
        m = monitor.get_metrics()
        sent = m["nodes"]["trainer"]["totals"]["bytes_sent"]
        print(f"{m['samples']} samples; trainer sent {sent} bytes; anomalies: {monitor.detect_anomalies()}")
        out = a.out or os.path.join(tempfile.mkdtemp(), "metrics.json")
        monitor.export_metrics(out)
        print(f"metrics written to {out}")
        if sent < 20 * (256 << 10):
            raise SystemExit(1)


if __name__ == "__main__":
    main()
