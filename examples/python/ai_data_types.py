"""The guide's AI-workload configuration: per data type priorities, compression and
transforms, then sends that follow them.

    python examples/python/ai_data_types.py
"""
import numpy as np

from hyperfabric import DataType, HardwareType, HyperFabricProtocol, NodeSignature, PacketPriority


def main() -> None:
    with HyperFabricProtocol(protocol_id="ai-cluster") as fabric:
        fabric.register_node(NodeSignature("gpu-01", HardwareType.NVIDIA_H100, 400.0, 100))
        fabric.register_node(NodeSignature("ps-01", HardwareType.CPU_CLUSTER, 100.0, 1000))
        fabric.configure_data_types({
            DataType.GRADIENT: {"priority": PacketPriority.HIGH, "transform": "fp16"},
            DataType.PARAMETER: {"priority": PacketPriority.NORMAL, "compression": "lz4"},
            DataType.ACTIVATION: {"priority": PacketPriority.LOW, "compression": False},
        })
        grads = np.random.default_rng(1).standard_normal(1 << 18).astype(np.float32)
        params = np.zeros(1 << 18, dtype=np.float32)
        for dt, data in ((DataType.GRADIENT, grads), (DataType.PARAMETER, params), (DataType.ACTIVATION, grads)):
            r = fabric.send_data_sync("gpu-01", "ps-01", data, data_type=dt)
            m = fabric.receive_sync("ps-01", timeout=5)
            print(f"{dt.name:<10} priority={r.priority:<6} compression={r.compression:<5} "
                  f"ratio={r.compression_ratio:6.2f} sent={r.bytes} received={len(m)} transform={m.transform}")
        print("note: transforms (fp16, top-k, int8) apply to f32 sends through the Rust API's send_f32; "
              "Python byte sends carry the policy's priority and compression")


if __name__ == "__main__":
    main()
