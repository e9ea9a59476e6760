"""Joining a long-lived fabric through etcd, as ``hfabric serve --membership`` does.

::

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
from typing import Any, Dict, List, Optional, Union

from . import _native

__all__ = ["Member", "join"]

PathLike = Union[str, "os.PathLike[str]"]


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


class Member:
    """A node of this process that joined through etcd: its record is kept under a lease
    and the nodes that join or leave are learned through etcd's watch until :meth:`leave`."""

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
        never the password) and ``reads`` (how etcd was read: on_change, polls, resyncs)."""
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

    def leave(self) -> None:
        """Withdraws the record (the others dismiss this node at once) and stops the node."""
        self._m.leave()

    def __enter__(self) -> "Member":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.leave()


def join(fabric: Optional[PathLike] = None, *, node: str, membership: Optional[str] = None,
         world_size: int = 1, lease: float = 5.0, timeout: float = 60.0,
         listen: Optional[str] = None, etcd_cacert: Optional[PathLike] = None,
         etcd_cert: Optional[PathLike] = None, etcd_key: Optional[PathLike] = None,
         etcd_user: Optional[str] = None,
         etcd_password_file: Optional[PathLike] = None) -> Member:
    """Starts node ``node`` and joins through etcd (``membership``, else the fabric file's
    ``membership.url``); waits up to ``timeout`` seconds until ``world_size`` nodes (itself
    included) are listed. A record outlives its node's last keep-alive by ``lease`` s."""
    if not isinstance(world_size, int) or isinstance(world_size, bool) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1 (got {world_size!r})")
    text, origin = None, "(no fabric file)"
    if fabric is not None:
        origin = os.fspath(fabric)
        with open(origin, encoding="utf-8") as f:
            text = f.read()
    native = _native.Member.join(
        text, origin, node, membership=membership, world_size=world_size, lease_s=lease,
        timeout_s=timeout, listen=listen, etcd_cacert=_path(etcd_cacert),
        etcd_cert=_path(etcd_cert), etcd_key=_path(etcd_key), etcd_user=etcd_user,
        etcd_password_file=_path(etcd_password_file))
    return Member(native)
