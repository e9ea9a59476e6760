"""Every HyperFabricProtocol keyword takes effect (visible in the effective configuration the
nodes run with, or in what sends do) or is refused with its reason."""
from __future__ import annotations

import logging

import pytest

from hyperfabric import DataType, HyperFabricProtocol, LatencyViolation, Unsupported
from hyperfabric import _knobs

from conftest import pair_protocol


def tuning_of(**kw):
    p = pair_protocol(**kw)
    try:
        return p.effective_config()["tuning"], p
    finally:
        p.shutdown_sync()


@pytest.mark.parametrize("kw,field,value", [
    ({"buffer_pool_size": 48}, "buffer_pool_buffers", 48),
    ({"buffer_size": 256 << 10}, "buffer_pool_slot_bytes", 256 << 10),
    ({"max_packet_size": 65536}, "max_packet_size", 65536),
    ({"congestion_control": "cubic"}, "congestion_control", "cubic"),
    ({"tcp_no_delay": False}, "tcp_nodelay", False),
    ({"socket_recv_buffer": 1 << 20}, "socket_buffer_bytes", 1 << 20),
    ({"socket_send_buffer": 2 << 20}, "socket_buffer_bytes", 2 << 20),
    ({"preemptive_routing": False}, "qos_enabled", False),
    ({"interrupt_driven": False}, "idle_strategy", "busy_spin"),
    ({"interrupt_driven": True, "profile": "low_latency"}, "idle_strategy", "spin_park"),
    ({"enable_fault_tolerance": False}, "max_retransmits", 0),
    ({"profile": "low_latency"}, "max_packet_size", 4096),
    ({"tuning": {"window_bytes": 1 << 22}}, "window_bytes", 1 << 22),
])
def test_fabric_knobs_reach_the_running_nodes(kw, field, value):
    tuning, p = tuning_of(**kw)
    assert tuning[field] == value
    default, _ = tuning_of(profile=kw.get("profile", "high_throughput"))
    if "profile" not in kw or len(kw) > 1:
        assert default[field] != value, f"{field} already {value} by default: the test proves nothing"


def test_buffer_size_sets_the_slot_that_loans_fit():
    """The guide's BufferManager(pool_size, buffer_size): the nodes' pools have that many
    slots of that size, a loan up to one slot is a slot, one byte more is a heap buffer."""
    from hyperfabric import BufferManager
    p = pair_protocol(buffer_pool_size=8, buffer_size=128 << 10)
    try:
        bm = BufferManager(p, source="a", pool_size=8, buffer_size=128 << 10)
        stats = bm.get_stats()
        assert (stats["pool_size"], stats["slot_bytes"]) == (8, 128 << 10)
        fits = bm.allocate_buffer("b", 128 << 10)
        over = bm.allocate_buffer("b", (128 << 10) + 1)
        assert fits.is_shared and not over.is_shared
        r = p.send_data_sync("a", "b", fits)
        assert r.bytes == 128 << 10
        with pytest.raises(Unsupported, match="buffer_pool_slot_bytes = 131072"):
            BufferManager(p, source="a", buffer_size=1 << 20)
    finally:
        p.shutdown_sync()


def test_every_keyword_is_recorded():
    p = HyperFabricProtocol(protocol_id="k", buffer_pool_size=64, tcp_no_delay=True, kernel_bypass=False, numa_aware=False)
    for k in ("protocol_id", "buffer_pool_size", "tcp_no_delay", "kernel_bypass", "numa_aware",
              "enable_ml_routing", "enable_quantum_optimization", "enable_fault_tolerance",
              "default_latency_constraint_ns", "log_level", "profile", "transport"):
        assert k in p.knobs, k


def test_protocol_id_names_the_fabric():
    p = pair_protocol(protocol_id="lab-7")
    try:
        assert 'name = "lab-7"' in p.node("a").config_toml()
    finally:
        p.shutdown_sync()


def test_ml_and_quantum_routing_choose_the_strategy():
    assert _knobs.strategy(True, True, False) == "predictive"
    assert _knobs.strategy(True, True, True) == "quantum_optimized"
    assert _knobs.strategy(False, False, True) is None
    on = HyperFabricProtocol(enable_ml_routing=True).effective_config()
    off = HyperFabricProtocol(enable_ml_routing=False, enable_quantum_optimization=False).effective_config()
    assert (on["routing_strategy"], off["routing_strategy"]) == ("predictive", "lowest_latency")
    assert off["quantum_strategy"] == "lowest_latency"


def test_default_latency_constraint_refuses_slow_routes():
    p = pair_protocol(default_latency_constraint_ns=500)  # the a-b link is 1000 ns
    try:
        with pytest.raises(LatencyViolation) as e:
            p.send_data_sync("a", "b", b"x")
        assert e.value.limit_ns == 500 and e.value.route_latency_ns == 1000
        p.send_data_sync("a", "b", b"x", latency_constraint_ns=5000)  # an explicit one wins
    finally:
        p.shutdown_sync()


def test_log_level_sets_the_logger():
    HyperFabricProtocol(log_level="DEBUG")
    assert logging.getLogger("hyperfabric").level == logging.DEBUG
    with pytest.raises(ValueError):
        HyperFabricProtocol(log_level="LOUD")


def test_kernel_bypass_is_refused_with_the_reason():
    with pytest.raises(Unsupported) as e:
        HyperFabricProtocol(kernel_bypass=True)
    assert "RDMA" in e.value.reason and e.value.knob == "kernel_bypass"


def test_numa_aware_warns_or_refuses():
    if _knobs.numa_nodes() == 1:
        with pytest.warns(RuntimeWarning, match="one NUMA node"):
            HyperFabricProtocol(numa_aware=True)
    else:
        with pytest.raises(Unsupported):
            HyperFabricProtocol(numa_aware=True)


def test_license_tier_warns():
    with pytest.warns(RuntimeWarning, match="license"):
        HyperFabricProtocol(license_tier="enterprise")


def test_differing_socket_buffers_are_refused():
    with pytest.raises(ValueError, match="one size"):
        HyperFabricProtocol(socket_recv_buffer=1 << 20, socket_send_buffer=2 << 20)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError):
        HyperFabricProtocol(warp_drive=True)  # type: ignore[call-arg]


def test_transport_tcp_is_taken():
    p = pair_protocol(transport="tcp")
    try:
        r = p.send_data_sync("a", "b", b"over tcp")
        assert r.transports == ["tcp"]
    finally:
        p.shutdown_sync()


def test_fabric_field_out_of_range_is_a_config_error():
    from hyperfabric import ConfigError

    with pytest.raises(ConfigError) as e:
        HyperFabricProtocol(buffer_pool_size=10**9)
    assert "buffer_pool_buffers" in e.value.field


def test_send_keywords_refused_with_reason(pair):
    with pytest.raises(Unsupported):
        pair.send_data_sync("a", "b", b"x", requires_quantum_entanglement=True)
    with pytest.raises(Unsupported):
        pair.send_data_sync("a", "b", b"x", encryption_enabled=True)
    with pytest.raises(Unsupported):
        pair.configure_multipath([["a", "b"]], failover_enabled=False)


def test_zero_copy_false_takes_a_private_copy(pair):
    data = bytearray(b"a" * 1000)
    r = pair.send_data_sync("a", "b", data, zero_copy=False, data_type=DataType.TENSOR)
    assert r.bytes == 1000 and bytes(pair.receive_sync("b", 5).payload) == bytes(data)


def test_configure_alerts_reaches_nodes_started_after():
    from hyperfabric import ConfigError, HyperFabricProtocol

    from conftest import sig

    p = HyperFabricProtocol(protocol_id="alerts")
    try:
        table = p.configure_alerts({"latency_threshold_ms": 5.0, "endpoints": ["log"]})
        assert table["latency_ms"] == 5.0
        p.register_node(sig("watched"))
        text = p.node("watched").config_toml()
        assert "[alerts]" in text and "latency_ms = 5" in text
        with pytest.raises(ConfigError):
            p.configure_alerts({"loudness": 11})
        with pytest.warns(RuntimeWarning, match="watched"):
            p.configure_alerts({"latency_ms": 2.0})
    finally:
        p.shutdown_sync()
