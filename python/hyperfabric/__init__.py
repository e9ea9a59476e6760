"""HyperFabric from Python: the guide's API on real nodes.

``HyperFabricProtocol`` runs the nodes this process registers as real HyperFabric nodes
(the Rust library, through the ``hyperfabric._native`` extension) and reaches the others
over the fabric::

    from hyperfabric import HyperFabricProtocol, NodeSignature, HardwareType, DataType
    with HyperFabricProtocol() as p:
        p.register_node(NodeSignature("a", HardwareType.CPU_CLUSTER, 100, 1000))
        p.register_node(NodeSignature("b", HardwareType.CPU_CLUSTER, 100, 1000))
        r = p.send_data_sync("a", "b", b"hello", data_type=DataType.TENSOR)
        msg = p.receive_sync("b", timeout=1)
"""
from . import _native
from .buffers import LOAN_SLOT_BYTES, BufferManager
from .compression import AdaptiveCompressor
from .errors import (
    BandwidthExceeded, ConfigError, CredentialsError, HyperFabricError, InvalidArgument, IoError, LatencyViolation,
    NodeNotFound, ProtocolError, Rejected, Shutdown, Timeout, Unreachable, Unsupported,
)
from .membership import Member, join
from .messages import Message
from .nodes import NodeSignature
from .protocol import HyperFabricProtocol
from .results import PingResult, Result, SendResult
from .routing import RoutingEngine
from .types import DataType, HardwareType, PacketPriority

__version__ = _native.VERSION

# The original package's exception names.
NodeNotFoundError = NodeNotFound
LatencyViolationError = LatencyViolation
BandwidthExceededError = BandwidthExceeded

__all__ = [
    "HyperFabricProtocol", "NodeSignature", "HardwareType", "DataType", "PacketPriority",
    "Message", "SendResult", "PingResult", "Result", "RoutingEngine", "BufferManager",
    "AdaptiveCompressor", "LOAN_SLOT_BYTES", "HyperFabricError", "ConfigError", "NodeNotFound",
    "Unreachable", "Timeout", "Rejected", "LatencyViolation", "BandwidthExceeded",
    "ProtocolError", "InvalidArgument", "Shutdown", "IoError", "CredentialsError", "Unsupported",
    "Member", "join",
    "NodeNotFoundError", "LatencyViolationError", "BandwidthExceededError", "__version__",
]
