"""Shared set-up: a protocol with two in-process nodes, and helpers."""
from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest

from hyperfabric import HardwareType, HyperFabricProtocol, NodeSignature

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def sig(node_id: str, hw: HardwareType = HardwareType.CPU_CLUSTER, **kw) -> NodeSignature:
    return NodeSignature(node_id, hw, kw.pop("bandwidth_gbps", 100.0), kw.pop("latency_ns", 1000), **kw)


def pair_protocol(**kwargs) -> HyperFabricProtocol:
    p = HyperFabricProtocol(**kwargs)
    p.register_node(sig("a"))
    p.register_node(sig("b"))
    p.connect("a", "b", bandwidth_gbps=100.0, latency_ns=1000)
    return p


@pytest.fixture
def pair() -> Iterator[HyperFabricProtocol]:
    p = pair_protocol(protocol_id="test-pair")
    try:
        yield p
    finally:
        p.shutdown_sync()


@pytest.fixture
def python() -> str:
    return sys.executable
