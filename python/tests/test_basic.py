"""The guide's API on two in-process nodes: real bytes through real transports."""
from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

import hyperfabric
from hyperfabric import DataType, HardwareType, PacketPriority, SendResult

from conftest import pair_protocol, sig


def test_enums_have_the_guide_members():
    assert len({h for h in HardwareType}) == 10
    assert sorted(hyperfabric._native.HARDWARE_TYPES) == sorted(h.value for h in HardwareType)
    assert {d.value for d in DataType} == set(hyperfabric._native.DATA_TYPES)
    assert DataType.GENERIC is DataType.CUSTOM
    assert PacketPriority.MEDIUM is PacketPriority.NORMAL
    assert [p.name for p in PacketPriority] == ["ULTRA_HIGH", "HIGH", "NORMAL", "LOW", "BACKGROUND"]


def test_send_bytes_arrive_identical_and_report_is_a_mapping(pair):
    data = os.urandom(200_000)
    r = pair.send_data_sync("a", "b", data, data_type=DataType.TENSOR, priority=PacketPriority.HIGH)
    assert isinstance(r, SendResult)
    assert r.bytes == len(data) and r["bytes_transferred"] == len(data)
    assert r.path == ["a", "b"] and r.path_taken == ["a", "b"]
    assert r.transports and r.transports[0] in ("shm", "tcp")
    assert r.latency_ns > 0 and r.throughput_gbps > 0
    assert dict(r)["data_type"] == "tensor" and r["priority"] == "high"
    m = pair.receive_sync("b", timeout=5)
    assert m.source == "a" and m.data_type is DataType.TENSOR and m.priority is PacketPriority.HIGH
    assert hashlib.sha256(m.payload).digest() == hashlib.sha256(data).digest()
    assert m.payload.readonly


def test_numpy_memoryview_bytearray_and_mmap_are_read_in_place(pair, tmp_path):
    np = pytest.importorskip("numpy")
    arr = np.arange(1 << 16, dtype=np.float32)
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(300_000))
    import mmap

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for data in (arr, memoryview(b"abc" * 1000), bytearray(b"xyz" * 500), mm):
            pair.send_data_sync("a", "b", data)
            got = pair.receive_sync("b", timeout=5)
            assert bytes(got.payload) == bytes(memoryview(data).cast("B"))


def test_received_numpy_view_is_zero_copy(pair):
    np = pytest.importorskip("numpy")
    arr = np.random.rand(1 << 18).astype(np.float32)  # 1 MiB: one chunk, by descriptor over shm
    pair.send_data_sync("a", "b", arr)
    m = pair.receive_sync("b", timeout=5)
    view = m.numpy(np.float32)
    assert np.array_equal(view, arr)
    assert not view.flags.writeable
    assert not view.flags.owndata  # a view over Rust's bytes, not a copy


def test_async_send_receive_and_iterator(pair):
    async def main():
        r = await pair.send_data("a", "b", b"hello", data_type=DataType.CONTROL_MESSAGE)
        assert r.bytes == 5
        m = await pair.receive("b", timeout=5)
        assert bytes(m.payload) == b"hello"
        for i in range(3):
            await pair.send_data("a", "b", bytes([i]) * 10)
        got = [bytes(m.payload) async for m in pair.messages("b", timeout=0.5)]
        assert got == [bytes([i]) * 10 for i in range(3)]
        await pair.register_node(sig("c"))  # awaitable too
        assert "c" in pair.local_nodes

    asyncio.run(main())


def test_send_many_streams(pair):
    items = [os.urandom(4096) for _ in range(20)]
    d = pair.send_many("a", "b", items, inflight=4)
    assert d["count"] == 20 and d["bytes"] == 20 * 4096
    got = []
    while len(got) < 20:
        got.extend(bytes(m.payload) for m in pair.receive_many("b", 64, 5.0))
    assert sorted(got) == sorted(items)


def test_ping_reports_the_guide_fields(pair):
    r = pair.ping_sync("a", "b", packet_size=64, count=20)
    for k in ("latency_ns", "latency_ms", "rtt_ns", "bandwidth_gbps", "packet_loss_rate", "path"):
        assert k in r
    assert r.received == 20 and r.packet_loss_rate == 0.0
    assert r.path == ["a", "b"]
    assert asyncio.run(pair.ping("a", "b", count=3)).received == 3


def test_topology_routing_health_congestion(pair):
    info = asyncio.run(pair.get_topology_info())
    assert info["node_count"] == 2 and info["nodes"]["a"]["local"]
    assert pair.routing_engine.find_optimal_path("a", "b") == ["a", "b"]
    assert pair.routing_engine.route("a", "b", "lowest_latency")["latency_ns"] == 1000
    pair.send_data_sync("a", "b", b"x" * 100)
    h = pair.check_node_health("b")
    assert h["healthy"] and h["uptime_seconds"] >= 0
    c = pair.analyze_congestion(["a", "b"])
    assert c["hops"][0]["link"] is not None and c["hops"][0]["link"]["peer"] == "b"


def test_configure_data_types_changes_later_sends(pair):
    pair.configure_data_types({DataType.GRADIENT: {"priority": PacketPriority.LOW, "compression": "lz4"}})
    assert pair.data_type_policy("a", DataType.GRADIENT)["compression"] == "lz4"
    r = pair.send_data_sync("a", "b", b"\0" * 100_000, data_type=DataType.GRADIENT)
    assert r.priority == "low" and r.compression == "lz4" and r.compression_ratio > 1.0
    assert bytes(pair.receive_sync("b", 5).payload) == b"\0" * 100_000


def test_adaptive_compressor_config_is_taken_by_send(pair):
    cfg = hyperfabric.AdaptiveCompressor("zstd").get_config()
    assert cfg == {"algorithm": "zstd", "enabled": True}
    r = pair.send_data_sync("a", "b", b"ab" * 50_000, compression_config=cfg)
    assert r.compression == "zstd" and r.compression_ratio > 1.0
    off = pair.send_data_sync("a", "b", b"ab" * 50_000, compression_enabled=False)
    assert off.compression_ratio == 1.0


def test_buffer_manager_loans_a_shared_slot(pair):
    np = pytest.importorskip("numpy")
    bm = hyperfabric.BufferManager(pair, source="a")
    loan = bm.allocate_buffer("b", 1 << 20)
    view = np.frombuffer(loan, dtype=np.uint8)
    view[:] = 7
    with pytest.raises(BufferError):
        pair.send_data_sync("a", "b", loan)  # a view is still alive
    del view
    r = pair.send_data_sync("a", "b", loan)
    assert r.bytes == 1 << 20
    m = pair.receive_sync("b", 5)
    assert m.is_shared == loan.is_shared
    assert bytes(m.payload) == b"\x07" * (1 << 20)
    assert bm.get_stats()["allocated"] == 1


def test_multipath_stripes_over_two_paths():
    p = pair_protocol()
    try:
        p.register_node(sig("relay"))
        p.connect("a", "relay", bandwidth_gbps=100.0, latency_ns=1000)
        p.connect("relay", "b", bandwidth_gbps=100.0, latency_ns=1000)
        p.configure_multipath([["a", "b"], ["a", "relay", "b"]], weights=[1, 1])
        data = os.urandom(8 << 20)
        r = p.send_data_sync("a", "b", data)
        assert len(r["paths"]) == 2 and all(x["bytes"] > 0 for x in r["paths"])
        assert bytes(p.receive_sync("b", 10).payload) == data
    finally:
        p.shutdown_sync()


def test_from_config_runs_the_file_nodes(tmp_path):
    import shutil

    from conftest import REPO

    path = tmp_path / "local.toml"
    shutil.copy(os.path.join(REPO, "examples", "local.toml"), path)
    # The file names its fabric secret (`hfabric keygen --out local.key` makes one).
    key = tmp_path / "local.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    with hyperfabric.HyperFabricProtocol.from_config(str(path)) as p:
        assert sorted(p.local_nodes) == ["node-a", "node-b"]
        p.send_data_sync("node-a", "node-b", b"from a file")
        assert bytes(p.receive_sync("node-b", 5).payload) == b"from a file"


def test_cancelled_receive_loses_no_message(pair):
    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pair.receive("b"), 0.05)  # cancelled while waiting
        await pair.send_data("a", "b", b"after the cancel")
        m = await pair.receive("b", timeout=5)
        assert bytes(m.payload) == b"after the cancel"

    asyncio.run(main())


def test_f32_transforms_travel_transformed_and_decode(pair):
    np = pytest.importorskip("numpy")
    x = np.random.default_rng(3).standard_normal(1 << 16).astype(np.float32)
    pair.configure_data_types({DataType.GRADIENT: {"transform": "fp16"},
                               DataType.ACTIVATION: {"transform": "topk", "topk_fraction": 0.1}})
    r = pair.send_data_sync("a", "b", x, data_type=DataType.GRADIENT)
    assert r.transform == "fp16" and r.bytes < x.nbytes * 0.6
    m = pair.receive_sync("b", 5)
    assert m.transform == "fp16"
    assert np.allclose(m.tensor(), x, rtol=1e-3, atol=1e-3)
    pair.send_data_sync("a", "b", x, data_type=DataType.ACTIVATION)
    dense = pair.receive_sync("b", 5).tensor()
    assert dense.shape == x.shape and 0 < np.count_nonzero(dense) <= 0.11 * x.size
    with pytest.raises(TypeError, match="float32"):
        pair.send_data_sync("a", "b", b"not floats", data_type=DataType.GRADIENT)
