"""Joining a fabric as ``hfabric serve`` does: from the job launcher (``--bootstrap``) or
through etcd (``--membership``).

Under torchrun, Slurm or Open MPI, ``hyperfabric.join()`` alone reads the launcher's
environment (``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``, ``SLURM_*``,
``OMPI_COMM_WORLD_*``); rank 0 serves the rendezvous store at the master's port and the node
is ``rank-N``. ``bootstrap="explicit"`` with ``rank``, ``world_size`` and ``master="HOST:PORT"``
states it by hand; ``bootstrap`` may also name one launcher (torchrun, slurm, mpi)::

    m = hyperfabric.join()                                   # under torchrun: rank-0 .. rank-N
    m = hyperfabric.join(bootstrap="explicit", rank=1, world_size=4, master="10.0.0.1:29500")

Through etcd::

    import hyperfabric
    m = hyperfabric.join("fabric.toml", node="gpu-01")          # the file's [membership]
    m = hyperfabric.join(node="gpu-01", membership="etcds://etcd-1:2379/hf/lab",
                         etcd_cacert="etcd-ca.pem", etcd_user="hf",
                         etcd_password_file="/etc/hf/etcd.pw", world_size=4)
    m.send("gpu-02", b"bytes")
    m.leave()

Each keyword overrides the fabric file's ``[membership]`` field of the same name
(``membership`` its ``url``, ``etcd_cacert`` its ``cacert``, ...). A user's password comes
from ``etcd_password_file``, else the file's ``password_file``, else the environment variable
``HF_ETCD_PASSWORD``; never from an argument. A wrong user or password, or TLS that fails,
raises :class:`~hyperfabric.errors.CredentialsError`.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple, Union

from . import _native

__all__ = ["Member", "join"]

PathLike = Union[str, "os.PathLike[str]"]


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


class Member:
    """A node of this process that joined through etcd or the launcher's rendezvous store:
    its record is kept under a lease and the nodes that join or leave are learned until
    :meth:`leave`. Sends, pings, loans and multipath behave as on ``protocol.node(id)``."""

    def __init__(self, native: _native.Member) -> None:
        self._m = native

    @property
    def node_id(self) -> str:
        return self._m.node_id

    @property
    def local_addr(self) -> str:
        return self._m.local_addr

    def known_nodes(self) -> List[str]:
        """The nodes this node knows now, itself included (sorted)."""
        return self._m.known_nodes()

    def membership(self) -> Dict[str, Any]:
        """``directory``, ``etcd`` (the settings in force: url, tls, cacert, cert, key, user;
        never the password; None without etcd), ``reads`` (how the directory was read:
        on_change, polls, resyncs), ``launch`` (source, rank, world_size, ...) and ``store``
        (the rendezvous store's address rank 0 serves; None elsewhere)."""
        return json.loads(self._m.membership_json())

    def effective_config(self) -> Dict[str, Any]:
        """Every configuration field with its source and effect, ``membership.*`` included."""
        return json.loads(self._m.effective_config_json())

    def send(self, dst: str, data: Any, data_type: str = "custom") -> Dict[str, Any]:
        """Sends ``data`` (any C-contiguous buffer) to ``dst``; returns once it acknowledged."""
        return self._m.send(dst, data, _native.SendOpts(data_type))

    def recv(self, timeout: Optional[float] = None) -> _native.Message:
        """The next message; raises :class:`~hyperfabric.errors.Timeout` after ``timeout`` s."""
        return self._m.recv(timeout)

    def ping(self, dst: str, size: int = 64, count: int = 10, warmup: int = 0,
             timeout: float = 1.0, priority: Optional[str] = None,
             samples: bool = False) -> Dict[str, Any]:
        """Pings ``dst`` ``count`` times (after ``warmup``): round-trip statistics in ns; with
        ``samples`` also every one-way sample (``samples_ns``)."""
        return self._m.ping(dst, size, count, warmup, timeout, priority, samples)

    def ping1(self, dst: str, size: int = 64, timeout: float = 1.0) -> int:
        """One ping: its round trip in ns; raises :class:`~hyperfabric.errors.Timeout`."""
        return self._m.ping1(dst, size, timeout)

    def loan(self, dst: str, size: int) -> _native.Loan:
        """A writable buffer of ``size`` bytes for ``dst`` (a shared-memory slot where the
        link has one); send it with :meth:`send_loaned`."""
        return self._m.loan(dst, size)

    def send_loaned(self, loan: _native.Loan, data_type: str = "custom") -> Dict[str, Any]:
        """Sends a loan (by descriptor over shared memory); the loan is spent."""
        return self._m.send_loaned(loan, _native.SendOpts(data_type))

    def configure_multipath(self, dst: str, paths: List[Tuple[str, float]],
                            load_balancing_algorithm: str = "weighted_round_robin",
                            health_check_interval: float = 1.0) -> None:
        """Stripes later sends to ``dst`` over ``paths`` (first hop, weight)."""
        self._m.configure_multipath(dst, list(paths), load_balancing_algorithm,
                                    health_check_interval)

    def leave(self) -> None:
        """Withdraws the record (the others dismiss this node at once) and stops the node."""
        self._m.leave()

    def __enter__(self) -> "Member":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.leave()


def join(fabric: Optional[PathLike] = None, *, node: Optional[str] = None,
         membership: Optional[str] = None, bootstrap: Optional[str] = None,
         rank: Optional[int] = None, world_size: Optional[int] = None,
         local_rank: Optional[int] = None, master: Optional[str] = None,
         lease: float = 5.0, timeout: float = 60.0,
         listen: Optional[str] = None, etcd_cacert: Optional[PathLike] = None,
         etcd_cert: Optional[PathLike] = None, etcd_key: Optional[PathLike] = None,
         etcd_user: Optional[str] = None,
         etcd_password_file: Optional[PathLike] = None) -> Member:
    """Starts a node and joins: through etcd (``membership``, else the fabric file's
    ``membership.url``), or from the launcher (``bootstrap``: auto, explicit, torchrun,
    slurm, mpi; ``auto`` when there is no etcd). Waits up to ``timeout`` seconds until the
    world's nodes (``world_size``, or the launcher's) are listed. A record outlives its
    node's last keep-alive by ``lease`` s. Through etcd without a launcher, ``node`` is
    required; from a launcher it defaults to ``rank-N``."""
    for k, v in (("rank", rank), ("world_size", world_size), ("local_rank", local_rank)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0
                              or (k == "world_size" and v < 1)):
            raise ValueError(f"{k} must be an int >= {1 if k == 'world_size' else 0} (got {v!r})")
    text, origin = None, "(no fabric file)"
    if fabric is not None:
        origin = os.fspath(fabric)
        with open(origin, encoding="utf-8") as f:
            text = f.read()
    native = _native.Member.join(
        text, origin, node, membership=membership, world_size=world_size, lease_s=lease,
        timeout_s=timeout, listen=listen, etcd_cacert=_path(etcd_cacert),
        etcd_cert=_path(etcd_cert), etcd_key=_path(etcd_key), etcd_user=etcd_user,
        etcd_password_file=_path(etcd_password_file), bootstrap=bootstrap, rank=rank,
        local_rank=local_rank, master=master)
    return Member(native)
