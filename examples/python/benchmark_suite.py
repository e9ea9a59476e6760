"""The guide's benchmark suite: latency, throughput and concurrent streams on real nodes.

    python examples/python/benchmark_suite.py
"""
import asyncio
import json

from hyperfabric import HardwareType, HyperFabricProtocol, NodeSignature
from hyperfabric.benchmark import PerformanceBenchmark


async def main() -> None:
    async with HyperFabricProtocol(protocol_id="bench-suite") as fabric:
        for nid in ("node-a", "node-b", "node-c"):
            await fabric.register_node(NodeSignature(nid, HardwareType.CPU_CLUSTER, 100.0, 1000))
        bench = PerformanceBenchmark(fabric)
        await bench.run_latency_test("node-a", "node-b", packet_sizes=[64, 4096], iterations=500)
        await bench.run_throughput_test("node-a", "node-b", data_sizes=[65536, 1 << 20], messages=32)
        await bench.run_concurrent_test("node-a", ["node-b", "node-c"], size=65536, messages=16)
        report = bench.generate_report()
        print("\n".join(report["summary"]))
        print(json.dumps(report["results"]["latency"]))


if __name__ == "__main__":
    asyncio.run(main())
