"""``BufferManager``: send buffers loaned from the link's shared-memory pool.

A loan is written in place (``memoryview(loan)``, ``numpy.frombuffer(loan, dtype)``) and
sent by descriptor: the receiver reads the very same memory. Over TCP, or above one slot
(``buffer_size``, default ``LOAN_SLOT_BYTES``), the loan is a heap buffer sent by copy, so
the same code runs anywhere.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from . import _native
from ._knobs import refuse

if TYPE_CHECKING:
    from .protocol import HyperFabricProtocol

LOAN_SLOT_BYTES: int = _native.LOAN_SLOT_BYTES


class BufferManager:
    """Loans for sends from in-process node ``source`` (default: the protocol's only local
    node). Counts what it handed out in :meth:`get_stats`.

    The guide's ``pool_size`` and ``buffer_size`` are the pools' slot count and slot bytes
    (``[fabric] buffer_pool_buffers`` and ``buffer_pool_slot_bytes``): give them to
    ``HyperFabricProtocol(buffer_pool_size=, buffer_size=)``, which the nodes start with.
    Given here they must match what the nodes run with (a pool is sized when its link is
    made); a different value is refused with :class:`~hyperfabric.errors.Unsupported`."""

    def __init__(
        self,
        protocol: "HyperFabricProtocol",
        source: Optional[str] = None,
        *,
        pool_size: Optional[int] = None,
        buffer_size: Optional[int] = None,
    ) -> None:
        self._p = protocol
        self._source = source
        self._stats = {"allocated": 0, "shared": 0, "heap": 0, "bytes": 0}
        tuning = protocol.effective_config()["tuning"]
        for knob, field, asked in (
            ("pool_size", "buffer_pool_buffers", pool_size),
            ("buffer_size", "buffer_pool_slot_bytes", buffer_size),
        ):
            if asked is not None and asked != tuning[field]:
                kw = "buffer_pool_size" if knob == "pool_size" else "buffer_size"
                raise refuse(
                    f"BufferManager({knob}=)",
                    f"the nodes run with {field} = {tuning[field]} (a pool is sized when its link "
                    f"is made): pass HyperFabricProtocol({kw}={asked}) instead",
                )

    def _src(self, source: Optional[str]) -> str:
        s = source or self._source
        if s is None:
            local = self._p.local_nodes
            if len(local) != 1:
                raise ValueError(f"name the sending node: this process runs {len(local)} nodes ({', '.join(local)})")
            s = local[0]
        return s

    def allocate_buffer(self, destination: str, size: int, source: Optional[str] = None) -> Any:
        """A writable buffer of ``size`` bytes for a message to ``destination``: a pool slot
        when it fits one (``slot_bytes`` of :meth:`get_stats`), else a heap buffer. Pass it
        as ``data=`` to ``send_data`` once every view of it is released."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be an int >= 0 (got {size!r})")
        loan = self._p.node(self._src(source)).loan(destination, size)
        self._stats["allocated"] += 1
        self._stats["shared" if loan.is_shared else "heap"] += 1
        self._stats["bytes"] += size
        return loan

    def get_stats(self) -> Dict[str, Any]:
        """Loans handed out, and the pools' ``pool_size`` (slots) and ``slot_bytes`` as the
        nodes run with them."""
        tuning = self._p.effective_config()["tuning"]
        return {**self._stats, "pool_size": tuning["buffer_pool_buffers"], "slot_bytes": tuning["buffer_pool_slot_bytes"]}
