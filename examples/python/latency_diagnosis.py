"""The guide's latency diagnosis: ping a node, compare with the route's nominal latency,
check the node's health and the congestion along the path.

    python examples/python/latency_diagnosis.py
"""
from hyperfabric import HardwareType, HyperFabricProtocol, NodeSignature


def main() -> None:
    with HyperFabricProtocol(protocol_id="diagnosis", profile="low_latency") as fabric:
        fabric.register_node(NodeSignature("gpu-01", HardwareType.NVIDIA_H100, 400.0, 100))
        fabric.register_node(NodeSignature("gpu-02", HardwareType.NVIDIA_H100, 400.0, 100))
        fabric.connect("gpu-01", "gpu-02", bandwidth_gbps=400.0, latency_ns=200)
        ping = fabric.ping_sync("gpu-01", "gpu-02", packet_size=64, count=1000, warmup=100)
        route = fabric.routing_engine.route("gpu-01", "gpu-02", "lowest_latency")
        print(f"measured one-way {ping.latency_ns} ns (p99 {ping.p99_ns} ns, rtt {ping.rtt_ns} ns, "
              f"loss {ping.packet_loss_rate:.1%}) over {ping.transport}; route nominal {route['latency_ns']} ns")
        health = fabric.check_node_health("gpu-02")
        print(f"gpu-02 healthy={health['healthy']} open_connections={health['open_connections']} "
              f"protocol_errors={health['protocol_errors']}")
        hop = fabric.analyze_congestion(["gpu-01", "gpu-02"])["hops"][0]
        print(f"gpu-01 -> gpu-02 link: {hop['link']}")
        print(f"queues at gpu-01: {hop['queues']}")
        if ping.received != 1000:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
