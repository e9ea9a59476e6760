"""A received message: its payload is a read-only ``memoryview`` over the bytes Rust holds
(the sender's shared-memory slot itself when it went by descriptor), never a copy."""
from __future__ import annotations

from typing import Any, Optional

from .types import DataType, PacketPriority


class Message:
    """``source``, ``data_type`` (:class:`DataType`), ``priority`` (:class:`PacketPriority`),
    ``name``, ``payload`` (read-only memoryview), ``is_shared``; ``msg.numpy(dtype)`` and
    ``bytes(msg)`` (a copy); on Python 3.12+ the message is itself a buffer
    (``numpy.frombuffer(msg, dtype)``). Drop it (or ``release()``) soon when it is shared:
    the sender lends only as many slots as its pool has."""

    __slots__ = ("_m", "payload")

    def __init__(self, native: Any) -> None:
        self._m = native
        self.payload: memoryview = memoryview(native)

    @property
    def source(self) -> str:
        return self._m.source

    @property
    def data_type(self) -> DataType:
        return DataType(self._m.data_type)

    @property
    def priority(self) -> PacketPriority:
        return PacketPriority[self._m.priority.upper()]

    @property
    def name(self) -> Optional[str]:
        return self._m.name

    @property
    def transform(self) -> str:
        return self._m.transform

    @property
    def is_shared(self) -> bool:
        return self._m.is_shared

    @property
    def transfer_id(self) -> int:
        return self._m.transfer_id

    def numpy(self, dtype: Any = "uint8") -> Any:
        """The payload as a read-only numpy array (no copy)."""
        import numpy as np

        return np.frombuffer(self.payload, dtype=dtype)

    def tensor(self) -> Any:
        """The float32 tensor the sender sent, decoded from its data type's transform
        (top-k, fp16, bf16, int8) or read as float32 (a new numpy array)."""
        import numpy as np

        return np.frombuffer(self._m.decode_f32(), dtype=np.float32)

    def release(self) -> None:
        """Lets go of the payload view (the slot returns once no other view is left)."""
        self.payload.release()

    def __buffer__(self, flags: int) -> memoryview:  # Python 3.12+
        return memoryview(self._m)

    def __len__(self) -> int:
        return len(self._m)

    def __bytes__(self) -> bytes:
        return bytes(self.payload)

    def __repr__(self) -> str:
        return f"Message(source={self.source!r}, data_type={self.data_type.name}, bytes={len(self)}, shared={self.is_shared})"
