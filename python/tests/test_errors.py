"""Bad arguments raise the documented exception; fabric errors mirror the Rust Error."""
from __future__ import annotations

import pytest

import hyperfabric
from hyperfabric import (
    ConfigError, DataType, HardwareType, HyperFabricError, HyperFabricProtocol, NodeNotFound,
    NodeSignature, Timeout,
)

from conftest import sig


def test_node_signature_validation():
    with pytest.raises(ValueError, match="unknown hardware_type"):
        NodeSignature("x", "warp-core", 100.0, 10)
    with pytest.raises(ValueError, match="bandwidth_gbps"):
        NodeSignature("x", HardwareType.NVIDIA_H100, -1.0, 10)
    with pytest.raises(ValueError, match="latency_ns"):
        NodeSignature("x", HardwareType.NVIDIA_H100, 1.0, -5)
    with pytest.raises(TypeError):
        NodeSignature("x", HardwareType.NVIDIA_H100, "fast", 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        NodeSignature("", HardwareType.NVIDIA_H100, 1.0, 5)
    assert NodeSignature("x", "nvidia-h100", 1.0, 5).hardware_type is HardwareType.NVIDIA_H100
    assert NodeSignature("x", "NVIDIA_H100", 1.0, 5).hardware_type is HardwareType.NVIDIA_H100


def test_send_argument_errors(pair):
    with pytest.raises(ValueError, match="unknown data_type"):
        pair.send_data_sync("a", "b", b"x", data_type="tensr")
    with pytest.raises(ValueError, match="unknown priority"):
        pair.send_data_sync("a", "b", b"x", priority="urgent")
    with pytest.raises(TypeError, match="buffer protocol"):
        pair.send_data_sync("a", "b", "a str is not bytes")
    with pytest.raises(TypeError, match="buffer protocol"):
        pair.send_data_sync("a", "b", 12345)
    with pytest.raises(ValueError):
        pair.send_data_sync("a", "b", b"x", compression_config={"algorithm": "brotli"})
    with pytest.raises(TypeError):
        pair.send_data_sync("a", "b", b"x", zero_copy="yes")
    with pytest.raises(ValueError):
        pair.configure_data_types({DataType.TENSOR: {"colour": "red"}})
    with pytest.raises(ValueError, match="finite"):
        pair.send_data_sync("a", "b", b"x", timeout=-1.0)


def test_non_contiguous_numpy_is_a_type_error(pair):
    np = pytest.importorskip("numpy")
    a = np.arange(100, dtype=np.float64).reshape(10, 10)[:, ::2]
    with pytest.raises(TypeError, match="C-contiguous"):
        pair.send_data_sync("a", "b", a)
    pair.send_data_sync("a", "b", np.ascontiguousarray(a))  # the advice works


def test_unknown_nodes(pair):
    with pytest.raises(NodeNotFound) as e:
        pair.send_data_sync("a", "nowhere", b"x")
    assert e.value.node == "nowhere" and isinstance(e.value, LookupError)
    with pytest.raises(NodeNotFound):
        pair.send_data_sync("ghost", "b", b"x")
    with pytest.raises(NodeNotFound):
        pair.check_node_health("ghost")
    with pytest.raises(ValueError, match="already registered"):
        pair.register_node(sig("a"))
    with pytest.raises(TypeError):
        pair.register_node("a")  # type: ignore[arg-type]


def test_receive_timeout_is_a_timeout_error(pair):
    with pytest.raises(Timeout) as e:
        pair.receive_sync("b", timeout=0.05)
    assert isinstance(e.value, TimeoutError) and isinstance(e.value, HyperFabricError)


def test_unreachable_peer_raises(pair):
    from hyperfabric import Unreachable

    pair.register_node(sig("far"), address="127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises((Unreachable, Timeout)):
        pair.send_data_sync("a", "far", b"x", timeout=2.0)


def test_config_error_names_file_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[fabric]\nname = "x"\nprofile = "warp"\n\n[[nodes]]\nid = "a"\nhardware = "cpu-cluster"\n')
    with pytest.raises(ConfigError) as e:
        HyperFabricProtocol.from_config(str(bad))
    assert e.value.file == str(bad) and "profile" in e.value.field and e.value.reason
    with pytest.raises(NodeNotFound):
        good = tmp_path / "good.toml"
        good.write_text('[fabric]\nname = "x"\n\n[[nodes]]\nid = "a"\nhardware = "cpu-cluster"\nlisten = "127.0.0.1:0"\n')
        HyperFabricProtocol.from_config(str(good), node="zz")


def test_shut_down_node_raises(pair):
    n = pair.node("a")
    pair.shutdown_sync()
    with pytest.raises(hyperfabric.Shutdown):
        n.send("b", b"x", hyperfabric._native.SendOpts())
    with pytest.raises(NodeNotFound):
        pair.node("a")


def test_native_arguments_are_checked(pair):
    n = pair.node("a")
    with pytest.raises(ValueError):
        n.send_many("b", [b"x"], hyperfabric._native.SendOpts(), 0)
    with pytest.raises(ValueError):
        n.recv_many(0, 0.1)
    with pytest.raises(ValueError):
        hyperfabric._native.SendOpts(bandwidth_requirement_gbps=-1.0)
    with pytest.raises(OverflowError):
        n.ping("b", size=-1)
    with pytest.raises(hyperfabric.InvalidArgument):
        n.ping("b", count=0)


def test_shutdown_does_not_wait_behind_a_blocked_receive():
    import threading

    from conftest import pair_protocol

    p = pair_protocol()
    node = p.node("b")
    got = []

    def wait_forever():
        try:
            node.recv(None)
        except BaseException as e:  # the outcome is checked below
            got.append(e)

    t = threading.Thread(target=wait_forever, daemon=True)
    t.start()
    # In a thread of its own, bounded: it would hang if the receiver kept the node's lock.
    s = threading.Thread(target=p.shutdown_sync, daemon=True)
    s.start()
    s.join(30)
    t.join(30)
    assert not s.is_alive() and not t.is_alive()
    assert len(got) == 1 and isinstance(got[0], hyperfabric.Shutdown)
