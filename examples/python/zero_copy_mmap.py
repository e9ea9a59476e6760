"""The guide's zero-copy transfer: a numpy array backed by an mmap'd file goes from one node
to another with zero_copy=True (read in place, the GIL released), and arrives identical.

    python examples/python/zero_copy_mmap.py [--mib 256]
"""
import argparse
import hashlib
import mmap
import os
import tempfile
import tracemalloc

import numpy as np

from hyperfabric import DataType, HardwareType, HyperFabricProtocol, NodeSignature, PacketPriority


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=64, help="size of the array file in MiB")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, HyperFabricProtocol(protocol_id="zero-copy") as fabric:
        fabric.register_node(NodeSignature("gpu-01", HardwareType.NVIDIA_H100, 400.0, 100))
        fabric.register_node(NodeSignature("gpu-02", HardwareType.NVIDIA_H100, 400.0, 100))
        path = os.path.join(d, "weights.bin")
        np.random.default_rng(7).random((a.mib << 20) // 4, dtype=np.float32).tofile(path)
        with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as mm:
            tensor = np.frombuffer(mm, dtype=np.float32)
            tracemalloc.start()
            result = fabric.send_data_sync(
                source="gpu-01", destination="gpu-02", data=tensor,
                data_type=DataType.PARAMETER, priority=PacketPriority.HIGH, zero_copy=True,
            )
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            msg = fabric.receive_sync("gpu-02", timeout=60)
            same = hashlib.sha256(msg.payload).digest() == hashlib.sha256(mm).digest()
            del tensor
        print(f"sent {result.bytes} bytes in {result.latency_ns / 1e6:.2f} ms "
              f"({result.throughput_gbps:.1f} Gbit/s) over {'/'.join(result.transports)}")
        print(f"python heap during the send: {peak} bytes; arrived identical: {same}")
        if not same or peak >= 1 << 20:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
