"""``BufferManager``: send buffers loaned from the link's shared-memory pool.

A loan is written in place (``memoryview(loan)``, ``numpy.frombuffer(loan, dtype)``) and
sent by descriptor: the receiver reads the very same memory. Over TCP, or above
``LOAN_SLOT_BYTES``, the loan is a heap buffer sent by copy, so the same code runs anywhere.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from . import _native

if TYPE_CHECKING:
    from .protocol import HyperFabricProtocol

LOAN_SLOT_BYTES: int = _native.LOAN_SLOT_BYTES


class BufferManager:
    """Loans for sends from in-process node ``source`` (default: the protocol's only local
    node). Counts what it handed out in :meth:`get_stats`."""

    def __init__(self, protocol: "HyperFabricProtocol", source: Optional[str] = None) -> None:
        self._p = protocol
        self._source = source
        self._stats = {"allocated": 0, "shared": 0, "heap": 0, "bytes": 0}

    def _src(self, source: Optional[str]) -> str:
        s = source or self._source
        if s is None:
            local = self._p.local_nodes
            if len(local) != 1:
                raise ValueError(f"name the sending node: this process runs {len(local)} nodes ({', '.join(local)})")
            s = local[0]
        return s

    def allocate_buffer(self, destination: str, size: int, source: Optional[str] = None) -> Any:
        """A writable buffer of ``size`` bytes for a message to ``destination``. Pass it as
        ``data=`` to ``send_data`` once every view of it is released."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be an int >= 0 (got {size!r})")
        loan = self._p.node(self._src(source)).loan(destination, size)
        self._stats["allocated"] += 1
        self._stats["shared" if loan.is_shared else "heap"] += 1
        self._stats["bytes"] += size
        return loan

    def get_stats(self) -> Dict[str, Any]:
        return {**self._stats, "slot_bytes": LOAN_SLOT_BYTES}
