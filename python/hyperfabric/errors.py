"""The exceptions of HyperFabric, mirroring the Rust library's ``Error`` enum.

Every exception raised by the fabric is a :class:`HyperFabricError`; each also derives from
the built-in exception a Python user would catch (``Timeout`` is a ``TimeoutError``,
``InvalidArgument`` a ``ValueError``, ...). Fields of the Rust variant are attributes.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "HyperFabricError", "ConfigError", "NodeNotFound", "Unreachable", "Timeout", "Rejected",
    "LatencyViolation", "BandwidthExceeded", "ProtocolError", "InvalidArgument", "Shutdown",
    "IoError", "CredentialsError", "Unsupported", "CollectiveError", "CollectiveTimeout", "CollectiveMismatch",
    "CollectiveAborted", "CollectiveMalformed", "CollectiveLimit", "GroupFailed",
]


class HyperFabricError(Exception):
    """Base of every fabric error. ``str(e)`` is the Rust message."""

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        for k, v in fields.items():
            setattr(self, k, v)
        self.fields = dict(fields)


class ConfigError(HyperFabricError, ValueError):
    """A fabric file or API-built configuration is invalid: ``file``, ``field``, ``reason``."""

    file: str
    field: str
    reason: str


class NodeNotFound(HyperFabricError, LookupError):
    """A node id the fabric does not know (``node``)."""

    node: str


class Unreachable(HyperFabricError, ConnectionError):
    """The destination could not be reached (``node``, ``reason``)."""

    node: str
    reason: str


class Timeout(HyperFabricError, TimeoutError):
    """An operation did not finish in time (``what``, ``after_s``)."""

    what: str
    after_s: float


class Rejected(HyperFabricError):
    """The peer refused the operation (``reason``)."""

    reason: str


class LatencyViolation(HyperFabricError):
    """No route meets ``latency_constraint_ns`` (``route_latency_ns``, ``limit_ns``)."""

    route_latency_ns: int
    limit_ns: int


class BandwidthExceeded(HyperFabricError):
    """No route offers the required bandwidth (``route_bandwidth_gbps``, ``required_gbps``)."""

    route_bandwidth_gbps: float
    required_gbps: float


class ProtocolError(HyperFabricError):
    """The peer broke the wire protocol (``peer``)."""

    peer: str


class InvalidArgument(HyperFabricError, ValueError):
    """A caller-side misuse the Rust library detected."""


class Shutdown(HyperFabricError, RuntimeError):
    """The node was shut down."""


class IoError(HyperFabricError, OSError):
    """An operating-system error (``context``)."""

    context: str


class CredentialsError(HyperFabricError, PermissionError):
    """A service refused this node's credentials, or they could not be checked: etcd said
    the user or password is wrong, or TLS to it failed (its certificate not signed by the
    CA given, or it wanted a client certificate). ``service`` names it (``etcd
    etcds://HOST:PORT/prefix``), ``reason`` says what it answered. Not retried: fix the
    settings (``etcd_user``, ``etcd_password_file``, ``etcd_cacert``, ...)."""

    service: str
    reason: str


class Unsupported(HyperFabricError, NotImplementedError):
    """A knob whose hardware or engine is absent here (``knob``, ``reason``)."""

    knob: str
    reason: str


class CollectiveError(HyperFabricError):
    """A collective (``hyperfabric.distributed``) could not complete. Every failure of a
    collective ends in one of these subclasses within the group's timeout, never a hang."""


class CollectiveTimeout(CollectiveError, TimeoutError):
    """No message came from ``rank`` (``node``) for ``step`` of ``collective`` #``seq``
    within ``after_s`` seconds: that rank died, hangs or never called the collective."""

    collective: str
    seq: int
    rank: int
    node: str
    step: int
    after_s: float


class CollectiveMismatch(CollectiveError, ValueError):
    """``rank`` called collective #``seq`` differently: ``field`` (operation, element type,
    reduction, element count, root) is ``theirs`` there and ``ours`` here."""

    collective: str
    seq: int
    rank: int
    field: str
    ours: str
    theirs: str


class CollectiveAborted(CollectiveError):
    """``rank`` gave up collective #``seq`` and said why (``reason``)."""

    seq: int
    rank: int
    reason: str


class CollectiveMalformed(CollectiveError):
    """A group member (``node``) sent something that is not a collective message."""

    node: str
    reason: str


class CollectiveLimit(CollectiveError):
    """A bounded table of the group filled up (``what``, ``limit``)."""

    what: str
    limit: int


class GroupFailed(CollectiveError):
    """The group failed earlier (``reason``) and refuses further collectives: the ranks may
    be at different collectives now. Build a new group."""

    reason: str
