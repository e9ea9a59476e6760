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
        r_grad = 0
        for dt, data in ((DataType.GRADIENT, grads), (DataType.PARAMETER, params), (DataType.ACTIVATION, grads)):
            r = fabric.send_data_sync("gpu-01", "ps-01", data, data_type=dt)
            m = fabric.receive_sync("ps-01", timeout=5)
            print(f"{dt.name:<10} priority={r.priority:<6} compression={r.compression:<5} "
                  f"ratio={r.compression_ratio:6.2f} sent={r.bytes} received={len(m)} transform={m.transform}")
            if dt is DataType.GRADIENT:
                r_grad = r.bytes
                err = float(np.abs(m.tensor() - grads).max())
                print(f"           decoded at ps-01: {m.tensor().size} float32 values, max error {err:.2e}")
        print(f"gradients travelled as fp16: {grads.nbytes} bytes of float32 became {r_grad} on the wire")
        if not 0 < r_grad < grads.nbytes:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
