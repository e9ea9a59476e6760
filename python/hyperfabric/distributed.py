"""Collectives in the shape of ``torch.distributed``, over HyperFabric.

Every process of a job runs one rank: a node of a fabric file. ``init_process_group`` starts
that node and the group; the collectives then work **in place** on numpy arrays (or any
writable, C-contiguous buffer-protocol object; CPU torch tensors through ``.numpy()``)::

    import numpy as np
    import hyperfabric.distributed as dist

    dist.init_process_group("fabric.toml", rank=r, world_size=4)   # or RANK / WORLD_SIZE
    grads = np.ones(1 << 20, dtype=np.float32)
    dist.all_reduce(grads, op=dist.ReduceOp.AVG)                  # every rank: the mean
    work = dist.all_reduce(grads, async_op=True)                   # a handle
    work.wait()
    dist.destroy_process_group()

How it differs from ``torch.distributed``: ``all_gather``, ``reduce_scatter`` and
``all_to_all`` work on one array of ``world_size`` equal blocks, in place (like
``all_gather_into_tensor``), not on lists of tensors. Element types: float32, float64,
float16, bfloat16 (``ml_dtypes``), int32, int64, uint8.

The collectives run on a worker thread of the group, in the order they were started, with
the GIL released while a caller waits. Do not read or write an array between starting a
collective on it and its ``wait()`` returning. Every failure raises a
:class:`~hyperfabric.errors.CollectiveError` subclass within the group's ``timeout``: a rank
that died (:class:`~hyperfabric.errors.CollectiveTimeout`), ranks that called different
collectives (:class:`~hyperfabric.errors.CollectiveMismatch`), a rank that gave up
(:class:`~hyperfabric.errors.CollectiveAborted`); a failed group then raises
:class:`~hyperfabric.errors.GroupFailed` and must be rebuilt.
"""
from __future__ import annotations

import enum
import os
import sys
from typing import Any, List, Optional, Sequence, Tuple, Union

from . import _native

__all__ = [
    "ReduceOp", "Work", "ProcessGroup", "init_process_group", "destroy_process_group",
    "is_initialized", "get_rank", "get_world_size", "all_reduce", "reduce_scatter",
    "all_gather", "broadcast", "reduce", "all_to_all", "barrier",
]


class ReduceOp(str, enum.Enum):
    """How all_reduce, reduce and reduce_scatter combine the ranks' values."""

    SUM = "sum"
    AVG = "avg"
    """The sum divided by the group size (integers truncate)."""
    MIN = "min"
    MAX = "max"
    PRODUCT = "prod"


# numpy dtype names -> the collective's element type.
_NUMPY = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16",
          "int32": "i32", "int64": "i64", "uint8": "u8"}
# buffer-protocol formats (native byte order) -> element type, for non-numpy objects.
_FORMATS = {"f": "f32", "d": "f64", "e": "f16", "i": "i32", "q": "i64", "B": "u8"}


def _torch_array(t: Any) -> Tuple[Any, str]:
    """A CPU torch tensor as a numpy array over the same memory."""
    import torch  # only reached for torch tensors

    if t.device.type != "cpu":
        raise TypeError(f"a collective needs a CPU tensor (got one on {t.device})")
    if not t.is_contiguous():
        raise ValueError("the tensor is not contiguous: pass tensor.contiguous() and copy back")
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: the same bytes as int16
        return t.view(torch.int16).numpy(), "bf16"
    arr = t.numpy()
    return arr, _element_type(arr)


def _element_type(obj: Any) -> str:
    dt = getattr(obj, "dtype", None)
    if dt is not None and hasattr(dt, "name") and hasattr(dt, "byteorder"):
        if dt.name not in _NUMPY:
            raise TypeError(f"dtype {dt.name} is not a collective element type "
                            f"(supported: {', '.join(_NUMPY)})")
        big = dt.byteorder == ">" or (dt.byteorder == "=" and sys.byteorder == "big")
        if big:
            raise TypeError(f"dtype {dt} is big-endian: collectives carry little-endian "
                            "elements (pass x.astype(x.dtype.newbyteorder('<')))")
        return _NUMPY[dt.name]
    fmt = memoryview(obj).format.lstrip("@=<")
    if fmt in ("l", "L") and memoryview(obj).itemsize == 8:
        fmt = "q"
    if fmt not in _FORMATS:
        raise TypeError(f"buffer format {fmt!r} is not a collective element type "
                        f"(supported formats: {', '.join(_FORMATS)})")
    return _FORMATS[fmt]


def _buffer(tensor: Any) -> Tuple[Any, str]:
    """(the object to lend, its element type)."""
    if type(tensor).__module__.startswith("torch"):
        return _torch_array(tensor)
    dtype = _element_type(tensor)
    if dtype == "bf16":
        # ml_dtypes' bfloat16 has no buffer-protocol format: lend the same bytes as uint16
        # (a view, never a copy: the element size is the same).
        import numpy as np

        return tensor.view(np.uint16), dtype
    return tensor, dtype


def _op(op: Union[ReduceOp, str]) -> str:
    try:
        return ReduceOp(op).value
    except ValueError:
        raise ValueError(f"op {op!r}: expected one of {[o.value for o in ReduceOp]}") from None


class Work:
    """A collective started with ``async_op=True``. The array it works on is the caller's
    again once :meth:`wait` returned True."""

    __slots__ = ("_work", "_keep")

    def __init__(self, work: _native.Work, keep: Any) -> None:
        self._work = work
        self._keep = keep  # the array (torch: the tensor whose memory the array views)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits up to ``timeout`` seconds (None: until it ends), GIL released. True once it
        finished; False if still running at the timeout. A failed collective raises its
        :class:`~hyperfabric.errors.CollectiveError`."""
        return self._work.wait(timeout)

    def is_completed(self) -> bool:
        """True once the collective finished (well or not: :meth:`wait` says which)."""
        return self._work.is_completed()


class ProcessGroup:
    """A group of ranks: the nodes ``ranks`` (ids of the fabric file ``fabric``, in rank
    order); this process runs ``node``. See :func:`init_process_group` for the keywords."""

    def __init__(self, fabric: Union[str, os.PathLike], node: str, ranks: Sequence[str], *,
                 timeout: float = 5.0, transport: str = "auto", chunk_bytes: Optional[int] = None,
                 small_bytes: Optional[int] = None, window: Optional[int] = None,
                 context: int = 0, arena: bool = False,
                 arena_bytes: Optional[int] = None) -> None:
        self._g: Optional[_native.Group] = _native.Group(
            os.fspath(fabric), node, list(ranks), timeout_s=timeout, chunk_bytes=chunk_bytes,
            small_bytes=small_bytes, window=window, context=context, transport=transport,
            arena=arena, arena_bytes=arena_bytes)

    @property
    def _native(self) -> _native.Group:
        if self._g is None:
            from .errors import Shutdown
            raise Shutdown("the process group was destroyed")
        return self._g

    def rank(self) -> int:
        """This process's rank."""
        return self._native.rank

    def size(self) -> int:
        """The number of ranks."""
        return self._native.size

    @property
    def ranks(self) -> List[str]:
        """The node ids, by rank."""
        return list(self._native.ranks)

    def _run(self, collective: str, tensor: Any, op: str = "sum", root: int = 0,
             async_op: bool = False) -> Optional[Work]:
        if tensor is None:
            buf, dtype, keep = None, "u8", None
        else:
            buf, dtype = _buffer(tensor)
            keep = (tensor, buf)
        if not 0 <= root < self.size():
            raise ValueError(f"root {root} is not a rank of a group of {self.size()}")
        work = Work(self._native.start(collective, buf, dtype, op, root), keep)
        if async_op:
            return work
        work.wait()
        return None

    def all_reduce(self, tensor: Any, op: Union[ReduceOp, str] = ReduceOp.SUM,
                   async_op: bool = False) -> Optional[Work]:
        """Every rank ends with ``op`` over all ranks' arrays (same length everywhere)."""
        return self._run("all_reduce", tensor, _op(op), async_op=async_op)

    def reduce_scatter(self, tensor: Any, op: Union[ReduceOp, str] = ReduceOp.SUM,
                       async_op: bool = False) -> Optional[Work]:
        """``tensor`` is ``size()`` blocks; rank ``r`` ends with block ``r`` reduced over all
        ranks (the other blocks hold partial results afterwards)."""
        return self._run("reduce_scatter", tensor, _op(op), async_op=async_op)

    def all_gather(self, tensor: Any, async_op: bool = False) -> Optional[Work]:
        """``tensor`` is ``size()`` blocks; rank ``r`` contributes block ``r``, every rank
        ends with all of them."""
        return self._run("all_gather", tensor, async_op=async_op)

    def broadcast(self, tensor: Any, src: int = 0, async_op: bool = False) -> Optional[Work]:
        """Every rank ends with rank ``src``'s array."""
        return self._run("broadcast", tensor, root=src, async_op=async_op)

    def reduce(self, tensor: Any, dst: int = 0, op: Union[ReduceOp, str] = ReduceOp.SUM,
               async_op: bool = False) -> Optional[Work]:
        """Rank ``dst`` ends with ``op`` over all ranks' arrays; the others keep theirs."""
        return self._run("reduce", tensor, _op(op), root=dst, async_op=async_op)

    def all_to_all(self, tensor: Any, async_op: bool = False) -> Optional[Work]:
        """``tensor`` is ``size()`` blocks: block ``j`` goes to rank ``j``, and afterwards
        holds what rank ``j`` sent this rank."""
        return self._run("all_to_all", tensor, async_op=async_op)

    def barrier(self, async_op: bool = False) -> Optional[Work]:
        """Returns once every rank has called it."""
        return self._run("barrier", None, async_op=async_op)

    def destroy(self) -> None:
        """Runs the collectives already started, then stops the group and its node."""
        if self._g is not None:
            self._g.close()
            self._g = None


_default: Optional[ProcessGroup] = None


def _env_int(name: str) -> Optional[int]:
    v = os.environ.get(name)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"environment variable {name}={v!r} is not an integer") from None


def _pick(fabric: str, rank: Optional[int], world_size: Optional[int], node: Optional[str],
          ranks: Optional[Sequence[str]]) -> Tuple[str, List[str]]:
    """(this node, the rank list) from the arguments (see init_process_group)."""
    if ranks is None:
        ranks = _native.Group.file_nodes(fabric)
        if world_size is not None:
            if not 1 <= world_size <= len(ranks):
                raise ValueError(f"world_size {world_size}: {fabric} has {len(ranks)} nodes")
            ranks = ranks[:world_size]
    ranks = list(ranks)
    if world_size is not None and world_size != len(ranks):
        raise ValueError(f"world_size {world_size} but {len(ranks)} ranks were named")
    if rank is not None and not 0 <= rank < len(ranks):
        raise ValueError(f"rank {rank} in a group of {len(ranks)}")
    if node is None:
        if rank is None:
            raise ValueError("init_process_group needs rank= (or RANK in the environment) "
                             "or node=")
        node = ranks[rank]
    elif rank is not None and ranks[rank] != node:
        raise ValueError(f"rank {rank} is `{ranks[rank]}`, not node `{node}`")
    return node, ranks


def init_process_group(fabric: Union[str, os.PathLike], *, rank: Optional[int] = None,
                       world_size: Optional[int] = None, node: Optional[str] = None,
                       ranks: Optional[Sequence[str]] = None, timeout: float = 5.0,
                       transport: str = "auto", chunk_bytes: Optional[int] = None,
                       small_bytes: Optional[int] = None, window: Optional[int] = None,
                       context: int = 0, arena: bool = False,
                       arena_bytes: Optional[int] = None) -> ProcessGroup:
    """Starts this process's node of the fabric file ``fabric`` and the default group.

    - ``ranks``: the node ids in rank order (default: the file's nodes in file order, the
      first ``world_size`` of them when given). Every rank passes the same list.
    - ``rank`` or ``node``: which of them this process runs. Without either, ``RANK`` (and
      ``WORLD_SIZE``) from the environment, as torch.distributed's ``env://`` reads them.
    - ``timeout``: seconds a rank waits without progress before the collective fails.
      Keep the file's ``send_timeout_ms`` near it: a send to a dead rank's full shared-memory
      pool waits that long.
    - ``transport``: ``auto`` (shared memory inside the host, else TCP), ``tcp`` or ``shm``.
    - ``chunk_bytes``, ``small_bytes``, ``window``, ``context``: the group options
      (docs/collectives.md): message size, the all_reduce size up to which recursive doubling
      is used, messages in flight, and a number that keeps two groups over the same ranks
      apart.
    - ``arena``: all_reduce and barrier through one shared-memory arena per group (every
      rank on this host; refused with ``InvalidArgument`` otherwise), ``arena_bytes`` each
      rank's stage for the chunked path (docs/collectives.md, "The intra-host arena").
    """
    global _default
    if _default is not None:
        raise RuntimeError("the default process group is already initialized "
                           "(destroy_process_group() first)")
    fabric = os.fspath(fabric)
    if rank is None and node is None:
        rank = _env_int("RANK")
    if world_size is None and ranks is None:
        world_size = _env_int("WORLD_SIZE")
    me, names = _pick(fabric, rank, world_size, node, ranks)
    _default = ProcessGroup(fabric, me, names, timeout=timeout, transport=transport,
                            chunk_bytes=chunk_bytes, small_bytes=small_bytes, window=window,
                            context=context, arena=arena, arena_bytes=arena_bytes)
    return _default


def _group(group: Optional[ProcessGroup]) -> ProcessGroup:
    if group is not None:
        return group
    if _default is None:
        raise RuntimeError("no default process group: call init_process_group() first")
    return _default


def is_initialized() -> bool:
    """Whether the default process group exists."""
    return _default is not None


def destroy_process_group(group: Optional[ProcessGroup] = None) -> None:
    """Stops ``group`` (default: the default group) after the collectives already started."""
    global _default
    g = _group(group)
    g.destroy()
    if g is _default:
        _default = None


def get_rank(group: Optional[ProcessGroup] = None) -> int:
    """This process's rank in ``group`` (default: the default group)."""
    return _group(group).rank()


def get_world_size(group: Optional[ProcessGroup] = None) -> int:
    """The number of ranks of ``group`` (default: the default group)."""
    return _group(group).size()


def all_reduce(tensor: Any, op: Union[ReduceOp, str] = ReduceOp.SUM,
               group: Optional[ProcessGroup] = None, async_op: bool = False) -> Optional[Work]:
    """See :meth:`ProcessGroup.all_reduce`; with ``async_op`` returns a :class:`Work`."""
    return _group(group).all_reduce(tensor, op, async_op)


def reduce_scatter(tensor: Any, op: Union[ReduceOp, str] = ReduceOp.SUM,
                   group: Optional[ProcessGroup] = None, async_op: bool = False) -> Optional[Work]:
    """See :meth:`ProcessGroup.reduce_scatter`."""
    return _group(group).reduce_scatter(tensor, op, async_op)


def all_gather(tensor: Any, group: Optional[ProcessGroup] = None,
               async_op: bool = False) -> Optional[Work]:
    """See :meth:`ProcessGroup.all_gather`."""
    return _group(group).all_gather(tensor, async_op)


def broadcast(tensor: Any, src: int = 0, group: Optional[ProcessGroup] = None,
              async_op: bool = False) -> Optional[Work]:
    """See :meth:`ProcessGroup.broadcast`."""
    return _group(group).broadcast(tensor, src, async_op)


def reduce(tensor: Any, dst: int = 0, op: Union[ReduceOp, str] = ReduceOp.SUM,
           group: Optional[ProcessGroup] = None, async_op: bool = False) -> Optional[Work]:
    """See :meth:`ProcessGroup.reduce`."""
    return _group(group).reduce(tensor, dst, op, async_op)


def all_to_all(tensor: Any, group: Optional[ProcessGroup] = None,
               async_op: bool = False) -> Optional[Work]:
    """See :meth:`ProcessGroup.all_to_all`."""
    return _group(group).all_to_all(tensor, async_op)


def barrier(group: Optional[ProcessGroup] = None, async_op: bool = False) -> Optional[Work]:
    """Returns once every rank of ``group`` has called it."""
    return _group(group).barrier(async_op)
