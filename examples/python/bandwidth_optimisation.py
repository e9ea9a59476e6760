"""The guide's bandwidth optimisation steps: socket and pool knobs, compression for
compressible data, and multipath over a relay; a knob without its hardware says why.

    python examples/python/bandwidth_optimisation.py
"""
import numpy as np

from hyperfabric import HardwareType, HyperFabricProtocol, NodeSignature, Unsupported


def main() -> None:
    try:
        HyperFabricProtocol(kernel_bypass=True)
    except Unsupported as e:
        print(f"kernel_bypass: {e.reason}")
    with HyperFabricProtocol(protocol_id="bandwidth", buffer_pool_size=128, socket_send_buffer=32 << 20,
                             tcp_no_delay=True, max_packet_size=1 << 20) as fabric:
        for nid in ("src", "relay", "dst"):
            fabric.register_node(NodeSignature(nid, HardwareType.CPU_CLUSTER, 100.0, 1000))
        fabric.connect("src", "dst", bandwidth_gbps=100.0, latency_ns=1000)
        fabric.connect("src", "relay", bandwidth_gbps=100.0, latency_ns=1000)
        fabric.connect("relay", "dst", bandwidth_gbps=100.0, latency_ns=1000)
        t = fabric.effective_config()["tuning"]
        print(f"effective: pool {t['buffer_pool_buffers']} buffers, socket buffers {t['socket_buffer_bytes']} B, "
              f"packets up to {t['max_packet_size']} B")
        data = np.zeros(16 << 20, dtype=np.uint8)  # compressible
        plain = fabric.send_data_sync("src", "dst", data, compression_enabled=False)
        fabric.receive_sync("dst", 10)
        packed = fabric.send_data_sync("src", "dst", data, compression_config={"algorithm": "lz4"})
        fabric.receive_sync("dst", 10)
        print(f"plain {plain.throughput_gbps:.1f} Gbit/s; lz4 ratio {packed.compression_ratio:.1f}")
        fabric.configure_multipath([["src", "dst"], ["src", "relay", "dst"]], weights=[2, 1])
        striped = fabric.send_data_sync("src", "dst", np.random.default_rng(0).integers(0, 255, 16 << 20, dtype=np.uint8))
        fabric.receive_sync("dst", 10)
        for p in striped["paths"]:
            print(f"path {'->'.join(p['via'])}: {p['bytes']} bytes")
        if len(striped["paths"]) != 2:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
