"""``NodeSignature``: a node's hardware profile, as the guide writes it. It becomes one
``[[nodes]]`` entry of the fabric this process runs."""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union

from .types import HardwareType, coerce

__all__ = ["NodeSignature"]

# Metadata keys the fabric file knows; other keys are kept as strings (`metadata.extra`).
_KNOWN_METADATA = ("interface_type", "mtu_size", "numa_node", "cpu_affinity")


@dataclass
class NodeSignature:
    """A node: id, hardware, nominal bandwidth (Gbit/s) and latency (ns), and the optional
    figures of the guide. Validated on creation (``ValueError`` / ``TypeError``)."""

    node_id: str
    hardware_type: Union[HardwareType, str]
    bandwidth_gbps: float
    latency_ns: int
    memory_gb: Optional[float] = None
    compute_units: Optional[int] = None
    quantum_coherence_time_us: Optional[float] = None
    photonic_channels: Optional[int] = None
    neuromorphic_neurons: Optional[int] = None
    physical_location: Optional[str] = None
    rack_position: Optional[str] = None
    switch_port: Optional[int] = None
    zone: Optional[str] = None
    metadata: Dict[str, Any] = field(default_factory=dict)
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, str) or not self.node_id.strip():
            raise ValueError("node_id must be a non-empty string")
        self.hardware_type = coerce(HardwareType, self.hardware_type, "hardware_type")
        if isinstance(self.bandwidth_gbps, bool) or not isinstance(self.bandwidth_gbps, (int, float)):
            raise TypeError("bandwidth_gbps must be a number")
        if not (math.isfinite(self.bandwidth_gbps) and self.bandwidth_gbps > 0):
            raise ValueError(f"bandwidth_gbps must be > 0 (got {self.bandwidth_gbps})")
        if isinstance(self.latency_ns, bool) or not isinstance(self.latency_ns, int):
            raise TypeError("latency_ns must be an int (nanoseconds)")
        if self.latency_ns < 0:
            raise ValueError(f"latency_ns cannot be negative (got {self.latency_ns})")
        for name in ("compute_units", "photonic_channels", "neuromorphic_neurons", "switch_port"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"{name} must be a non-negative int (got {v!r})")
        for name in ("memory_gb", "quantum_coherence_time_us"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a number >= 0 (got {v!r})")
        if not isinstance(self.metadata, dict):
            raise TypeError("metadata must be a dict")

    def to_entry(self, listen: Optional[str]) -> Dict[str, Any]:
        """The ``[[nodes]]`` entry (``listen``: this node's address, if known)."""
        hw = self.hardware_type
        assert isinstance(hw, HardwareType)
        e: Dict[str, Any] = {
            "id": self.node_id,
            "hardware": hw.wire,
            "bandwidth_gbps": float(self.bandwidth_gbps),
            "latency_ns": int(self.latency_ns),
            "memory_gb": None if self.memory_gb is None else float(self.memory_gb),
            "compute_units": self.compute_units,
            "quantum_coherence_time_us": self.quantum_coherence_time_us,
            "photonic_channels": self.photonic_channels,
            "neuromorphic_neurons": self.neuromorphic_neurons,
            "location": self.physical_location,
            "rack_position": self.rack_position,
            "switch_port": self.switch_port,
            "zone": self.zone,
            "listen": listen,
        }
        if listen is not None and listen.startswith("127."):
            e["host"] = "localhost"
        meta = {k: self.metadata[k] for k in _KNOWN_METADATA if k in self.metadata}
        extra = {str(k): str(v) for k, v in self.metadata.items() if k not in _KNOWN_METADATA}
        meta.update(extra)  # the file keeps other metadata keys as strings
        if meta:
            e["metadata"] = meta
        return e
