"""The guide's vocabulary: hardware types, data types and packet priorities.

Each member's ``wire`` is the name the Rust library (and the fabric file) uses.
"""
from __future__ import annotations

import enum
from typing import Any, Type, TypeVar, Union

__all__ = ["HardwareType", "DataType", "PacketPriority", "coerce"]


class HardwareType(enum.Enum):
    """The ten hardware types of the guide (values are the fabric file's names)."""

    NVIDIA_H100 = "nvidia-h100"
    NVIDIA_A100 = "nvidia-a100"
    NVIDIA_V100 = "nvidia-v100"
    AMD_MI300X = "amd-mi300x"
    INTEL_GAUDI2 = "intel-gaudi2"
    QUANTUM_QPU = "quantum-qpu"
    CPU_CLUSTER = "cpu-cluster"
    FPGA_FABRIC = "fpga-fabric"
    PHOTONIC_SWITCH = "photonic-switch"
    NEUROMORPHIC_CHIP = "neuromorphic-chip"

    @property
    def wire(self) -> str:
        return self.value


class DataType(enum.Enum):
    """What a transfer carries; per-type policies (priority, compression, transform) hang
    off it. ``GENERIC`` (the guide's name) is an alias of ``CUSTOM``."""

    TENSOR = "tensor"
    GRADIENT = "gradient"
    PARAMETER = "parameter"
    ACTIVATION = "activation"
    QUANTUM_STATE = "quantum_state"
    NEUROMORPHIC_SPIKE = "neuromorphic_spike"
    CONTROL_MESSAGE = "control_message"
    HEARTBEAT = "heartbeat"
    CUSTOM = "custom"
    GENERIC = "custom"

    @property
    def wire(self) -> str:
        return self.value


class PacketPriority(enum.Enum):
    """Priorities, most urgent first (the original package's integer values).
    ``MEDIUM`` (the guide's name) is an alias of ``NORMAL``."""

    ULTRA_HIGH = 0
    HIGH = 1
    NORMAL = 2
    MEDIUM = 2
    LOW = 3
    BACKGROUND = 4

    @property
    def wire(self) -> str:
        return self.name.lower() if self is not PacketPriority.MEDIUM else "normal"


E = TypeVar("E", bound=enum.Enum)


def coerce(cls: Type[E], value: Union[E, str, int, Any], what: str) -> E:
    """``value`` as a member of ``cls``: a member, its name (any case) or its value.
    Raises ``ValueError`` naming the accepted names, ``TypeError`` for other types."""
    if isinstance(value, cls):
        return value
    if isinstance(value, enum.Enum):
        raise TypeError(f"{what} must be a {cls.__name__}, got {type(value).__name__}.{value.name}")
    if isinstance(value, str):
        key = value.strip().upper().replace("-", "_")
        if key in cls.__members__:
            return cls.__members__[key]
        for m in cls:
            if m.value == value:
                return m
    elif isinstance(value, int) and not isinstance(value, bool):
        for m in cls:
            if m.value == value:
                return m
    else:
        raise TypeError(f"{what} must be a {cls.__name__} or its name, got {type(value).__name__}")
    names = ", ".join(cls.__members__)
    raise ValueError(f"unknown {what} {value!r} (expected one of: {names})")
