"""``HyperFabricProtocol``: the guide's entry point. Nodes registered here run inside this
process as real HyperFabric nodes (``hyperfabric._native.Node``, the Rust ``Fabric``) and
talk over loopback shared memory or TCP as the Rust API does; nodes given an ``address``
(or run by ``hfabric serve`` and named in a fabric file) are reached over the fabric."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import tomllib
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence, Union

from . import _knobs, _native, _toml
from .errors import HyperFabricError, NodeNotFound, Timeout
from .messages import Message
from .nodes import NodeSignature
from .results import PingResult, Result
from .routing import RoutingEngine
from .sending import Sender
from .types import DataType

__all__ = ["HyperFabricProtocol"]

log = logging.getLogger("hyperfabric")

_PROFILES = ("high_throughput", "low_latency")
# An awaited receive polls this many times back to back (yielding to the loop each time),
# then backs off to a poll every RECEIVE_POLL_MAX_S.
RECEIVE_SPIN_POLLS = 64
RECEIVE_POLL_MAX_S = 0.001



# `[fabric]` fields that name files.
_PATH_FIELDS = ("secret_file", "tls_cert", "tls_key", "tls_ca")

class _Done:
    """The result of a call that finished at once, awaitable too (the two sources differ on
    whether ``register_node`` is a coroutine): ``p.register_node(s)`` and
    ``await p.register_node(s)`` both work."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self):  # type: ignore[no-untyped-def]
        return self.value
        yield  # pragma: no cover  (makes this a generator)


class HyperFabricProtocol(Sender):
    """The fabric as the guide uses it. Every keyword either takes effect (see
    :attr:`knobs` and :meth:`effective_config`) or is refused with its reason
    (:class:`~hyperfabric.errors.Unsupported`, or a ``RuntimeWarning``).

    ``profile``: ``high_throughput`` (default) or ``low_latency``; ``transport``: ``auto``
    (shared memory inside the host, else TCP), ``tcp`` or ``shm``; ``tuning``: further
    ``[fabric]`` fields of the fabric file (``window_bytes``, ``send_timeout_ms``, ...)."""

    def __init__(
        self,
        protocol_id: Optional[str] = None,
        *,
        enable_ml_routing: bool = True,
        enable_quantum_optimization: bool = True,
        enable_fault_tolerance: bool = True,
        default_latency_constraint_ns: Optional[int] = None,
        log_level: Union[str, int] = "INFO",
        license_tier: Optional[str] = None,
        buffer_pool_size: Optional[int] = None,
        buffer_size: Optional[int] = None,
        max_packet_size: Optional[int] = None,
        congestion_control: Optional[str] = None,
        tcp_no_delay: Optional[bool] = None,
        socket_recv_buffer: Optional[int] = None,
        socket_send_buffer: Optional[int] = None,
        preemptive_routing: Optional[bool] = None,
        interrupt_driven: Optional[bool] = None,
        kernel_bypass: bool = False,
        numa_aware: Optional[bool] = None,
        profile: str = "high_throughput",
        transport: str = "auto",
        tuning: Optional[Dict[str, Any]] = None,
    ) -> None:
        if protocol_id is not None and (not isinstance(protocol_id, str) or not protocol_id.strip()):
            raise ValueError("protocol_id must be a non-empty string")
        if profile not in _PROFILES:
            raise ValueError(f"profile {profile!r}: expected one of {', '.join(_PROFILES)}")
        if transport not in ("auto", "tcp", "shm"):
            raise ValueError(f"transport {transport!r}: expected auto, tcp or shm")
        if default_latency_constraint_ns is not None and (
            isinstance(default_latency_constraint_ns, bool)
            or not isinstance(default_latency_constraint_ns, int)
            or default_latency_constraint_ns <= 0
        ):
            raise ValueError("default_latency_constraint_ns must be an int > 0 (nanoseconds) or None")
        overrides, record = _knobs.apply(dict(
            buffer_pool_size=buffer_pool_size, buffer_size=buffer_size, max_packet_size=max_packet_size,
            congestion_control=congestion_control, tcp_no_delay=tcp_no_delay,
            socket_recv_buffer=socket_recv_buffer, socket_send_buffer=socket_send_buffer,
            preemptive_routing=preemptive_routing, interrupt_driven=interrupt_driven,
            kernel_bypass=kernel_bypass, numa_aware=numa_aware, license_tier=license_tier,
            enable_fault_tolerance=enable_fault_tolerance,
        ))
        for k, v in (tuning or {}).items():
            overrides[k] = v
            record[f"tuning.{k}"] = f"fabric.{k} = {v!r}"
        self.protocol_id = protocol_id or "hyperfabric"
        self.profile = profile
        self.transport = transport
        self.enable_ml_routing = _knobs._bool("enable_ml_routing", enable_ml_routing)
        self.enable_quantum_optimization = _knobs._bool("enable_quantum_optimization", enable_quantum_optimization)
        self.default_latency_constraint_ns = default_latency_constraint_ns
        self.log_level = _knobs.log_level(log_level)
        record["protocol_id"] = f"fabric.name = {self.protocol_id!r}"
        record["profile"] = f"fabric.profile = {profile!r}"
        record["transport"] = f"links use {transport}"
        record["enable_ml_routing"] = "sends route by the predictive strategy" if enable_ml_routing else "sends route by the router's default (lowest latency)"
        record["enable_quantum_optimization"] = (
            "quantum_state sends route by the quantum_optimized strategy (link fidelity)"
            if enable_quantum_optimization else "quantum_state sends route like the others"
        )
        record["default_latency_constraint_ns"] = (
            f"sends without latency_constraint_ns are refused when the best route exceeds {default_latency_constraint_ns} ns"
            if default_latency_constraint_ns else "no default latency constraint"
        )
        record["log_level"] = f"logging.getLogger('hyperfabric').level = {self.log_level}"
        self.knobs: Dict[str, str] = record
        self._fabric: Dict[str, Any] = {"name": self.protocol_id, "profile": profile, **overrides}
        self._entries: Dict[str, Dict[str, Any]] = {}
        self._signatures: Dict[str, NodeSignature] = {}
        self._links: List[Dict[str, Any]] = []
        self._zones: List[Dict[str, Any]] = []
        self._local: Dict[str, Any] = {}  # id -> _native.Node
        self._policies: Dict[str, Dict[str, Any]] = {}
        self._f32_types: set = set()  # data types whose policy transforms float32 tensors
        self._multipath: List[Dict[str, Any]] = []
        self._opts_cache: Dict[Any, Any] = {}
        self._fabric_extra: Dict[str, Any] = {}  # [data_types], [[faults]], [alerts] of a file
        self.routing_engine = RoutingEngine(self)
        # The [fabric] table is validated now, against a placeholder node.
        self._validate({"nodes": [{"id": "_probe", "hardware": "cpu-cluster", "listen": "127.0.0.1:0"}]})

    # -- configuration ---------------------------------------------------------------

    def _doc(self, **replace: Any) -> Dict[str, Any]:
        doc: Dict[str, Any] = {"fabric": dict(self._fabric), "nodes": list(self._entries.values())}
        if self._links:
            doc["links"] = self._links
        if self._zones:
            doc["zones"] = self._zones
        doc.update(replace)
        return doc

    def _validate(self, replace: Dict[str, Any]) -> str:
        return _native.validate_config(_toml.dumps(self._doc(**replace)), f"<HyperFabricProtocol {self.protocol_id}>")

    def effective_config(self) -> Dict[str, Any]:
        """What the nodes run with: every ``[fabric]`` knob after the profile and the
        keywords (read back from a running node when there is one), and the per-send
        defaults this object applies."""
        if self._local:
            tuning = json.loads(next(iter(self._local.values())).tuning_json())
        else:
            tuning = json.loads(_native.profile_tuning(self.profile))
            doc = tomllib.loads(self._validate({"nodes": [{"id": "_probe", "hardware": "cpu-cluster", "listen": "127.0.0.1:0"}]}))
            tuning.update({k: v for k, v in doc.get("fabric", {}).items() if k not in ("name", "profile")})
        return {
            "name": self.protocol_id,
            "profile": self.profile,
            "transport": self.transport,
            "tuning": tuning,
            "routing_strategy": _knobs.strategy(self.enable_ml_routing, False, False) or "lowest_latency",
            "quantum_strategy": _knobs.strategy(self.enable_ml_routing, self.enable_quantum_optimization, True) or "lowest_latency",
            "default_latency_constraint_ns": self.default_latency_constraint_ns,
            "log_level": self.log_level,
        }

    # The guide's names for [alerts] fields.
    _ALERT_ALIASES = {
        "latency_threshold_ms": "latency_ms", "packet_loss_threshold": "loss_ratio",
        "cpu_threshold": "cpu_ratio", "memory_threshold": "memory_ratio",
        "bandwidth_threshold_gbps": "bandwidth_floor_gbps",
    }

    def configure_alerts(self, config: Dict[str, Any]) -> Dict[str, Any]:
        """The fabric file's ``[alerts]`` table (thresholds, ``endpoints`` such as ``"log"``,
        ``"http://..."``, ``"command:..."``; the guide's ``*_threshold`` names and
        ``webhook_url`` are accepted), validated now, for the nodes this process starts
        from now on: a node's alert watcher starts with it, so nodes already running keep
        running without (a ``RuntimeWarning`` names them). Returns the table."""
        if not isinstance(config, dict):
            raise TypeError("configure_alerts takes a dict of [alerts] fields")
        table: Dict[str, Any] = {}
        for k, v in config.items():
            if k == "webhook_url":
                table.setdefault("endpoints", []).append(str(v))
            else:
                table[self._ALERT_ALIASES.get(k, k)] = v
        extra = dict(self._fabric_extra)
        extra["alerts"] = table
        probe = {"nodes": [{"id": "_probe", "hardware": "cpu-cluster", "listen": "127.0.0.1:0"}], **extra}
        self._validate(probe)  # ConfigError names the field
        self._fabric_extra = extra
        self.knobs["configure_alerts"] = f"[alerts] {table!r} for nodes started from now on"
        if self._local:
            import warnings

            warnings.warn(f"configure_alerts: nodes already running keep running without these alerts: "
                          f"{', '.join(self._local)} (register nodes after configure_alerts)",
                          RuntimeWarning, stacklevel=2)
        return table

    @classmethod
    def from_config(cls, path: str, node: Union[str, Sequence[str], None] = None, **kwargs: Any) -> "HyperFabricProtocol":
        """Starts from a fabric file. ``node``: the node(s) this process runs (they listen on
        the file's addresses; the others are reached there); None: every node of the file
        runs here, on free loopback ports. ``kwargs`` as for the constructor (they override
        the file's ``[fabric]`` fields)."""
        with open(path, "rb") as f:
            text = f.read().decode()
        _native.validate_config(text, str(path))  # ConfigError names file and field
        doc = tomllib.loads(text)
        fab = doc.get("fabric", {})
        kwargs.setdefault("protocol_id", fab.get("name"))
        kwargs.setdefault("profile", fab.get("profile", "high_throughput"))
        p = cls(**kwargs)
        # The file's paths are relative to the file (as `hfabric serve` reads them); the
        # text is handed on without its location, so they are made absolute here.
        base = os.path.dirname(os.path.abspath(path))
        for k in _PATH_FIELDS:
            if isinstance(fab.get(k), str) and not os.path.isabs(fab[k]):
                fab[k] = os.path.join(base, fab[k])
        p._fabric = {**{k: v for k, v in fab.items()}, **p._fabric}
        p._links = list(doc.get("links", []))
        p._zones = list(doc.get("zones", []))
        for k in ("data_types", "faults", "alerts"):
            if k in doc:
                p._fabric_extra[k] = doc[k]
        entries = {e["id"]: dict(e) for e in doc.get("nodes", [])}
        run = list(entries) if node is None else ([node] if isinstance(node, str) else list(node))
        for n in run:
            if n not in entries:
                raise NodeNotFound(f"node `{n}` is not part of {path}", node=n)
        for i, n in enumerate(run):
            if node is None:
                # Distinct placeholders (nothing listens there) until each node started and
                # its real port was told to the others.
                entries[n]["listen"] = f"127.255.255.254:{i + 1}"
        p._entries = entries
        for n in run:
            p._start_local(entries[n], "127.0.0.1:0" if node is None else entries[n].get("listen"))
        return p

    # -- nodes -----------------------------------------------------------------------

    def register_node(self, node: NodeSignature, *, address: Optional[str] = None) -> _Done:
        """Adds a node. Without ``address`` it runs in this process (a real node on a free
        loopback port); with ``address`` (``host:port``) it is a node served elsewhere.
        Returns at once; the result is awaitable too."""
        if not isinstance(node, NodeSignature):
            raise TypeError(f"register_node takes a NodeSignature, got {type(node).__name__}")
        if node.node_id in self._local or node.node_id in self._entries:
            raise ValueError(f"node `{node.node_id}` is already registered")
        self._signatures[node.node_id] = node
        if address is None:
            self._start_local(node.to_entry("127.0.0.1:0"), "127.0.0.1:0")
        else:
            self._entries[node.node_id] = node.to_entry(address)
            self._sync_peers()
        return _Done(None)

    def _start_local(self, entry: Dict[str, Any], listen: Optional[str]) -> None:
        entry = dict(entry)
        if listen is not None:
            entry["listen"] = listen
        self._entries[entry["id"]] = entry
        text = _toml.dumps(self._doc(**self._fabric_extra))
        try:
            n = _native.Node.start(text, f"<HyperFabricProtocol {self.protocol_id}>", entry["id"],
                                   listen=listen, transport=self.transport)
        except BaseException:
            del self._entries[entry["id"]]
            raise
        entry["listen"] = n.local_addr
        if n.local_addr.startswith("127."):
            entry.setdefault("host", "localhost")
        self._local[entry["id"]] = n
        for dt in DataType:  # policies from a fabric file's [data_types]
            if n.policy(dt.wire)["transform"] in ("topk", "fp16", "bf16", "int8"):
                self._f32_types.add(dt.wire)
        for dt, pol in self._policies.items():
            n.configure_data_type(dt, **pol)
        self._sync_peers()

    def _sync_peers(self) -> None:
        """Tells every local node the current nodes, addresses and links."""
        text = _toml.dumps(self._doc())
        for n in self._local.values():
            n.register_nodes(text)

    def set_node_address(self, node_id: str, address: str) -> None:
        """Points a node served elsewhere at ``address`` (``host:port``), e.g. one that
        ``hfabric serve --listen 127.0.0.1:0`` started on a free port."""
        if node_id in self._local:
            raise ValueError(f"node `{node_id}` runs in this process; its address is its own")
        if node_id not in self._entries:
            raise NodeNotFound(f"node `{node_id}` is not registered", node=node_id)
        old = self._entries[node_id].get("listen")
        self._entries[node_id]["listen"] = address
        try:
            self._sync_peers()
        except HyperFabricError:
            self._entries[node_id]["listen"] = old
            raise

    def connect(self, a: str, b: str, *, bandwidth_gbps: float, latency_ns: int) -> None:
        """Adds a link between two registered nodes (routes may use it at once)."""
        for n in (a, b):
            if n not in self._entries:
                raise NodeNotFound(f"node `{n}` is not registered", node=n)
        self._links.append({"between": [a, b], "bandwidth_gbps": float(bandwidth_gbps), "latency_ns": int(latency_ns)})
        try:
            self._sync_peers()
        except HyperFabricError:
            self._links.pop()
            raise

    def unregister_node(self, node_id: str) -> None:
        """Removes a node (a local one is shut down)."""
        if node_id not in self._entries:
            raise NodeNotFound(f"node `{node_id}` is not registered", node=node_id)
        del self._entries[node_id]
        self._signatures.pop(node_id, None)
        self._links = [l for l in self._links if node_id not in l["between"]]
        local = self._local.pop(node_id, None)
        if local is not None:
            local.shutdown()

    def get_registered_nodes(self) -> Dict[str, NodeSignature]:
        return dict(self._signatures)

    def node(self, node_id: str) -> Any:
        """The in-process node ``node_id`` (``hyperfabric._native.Node``)."""
        try:
            return self._local[node_id]
        except KeyError:
            if node_id in self._entries:
                raise NodeNotFound(f"node `{node_id}` does not run in this process (it is reached over the fabric)", node=node_id) from None
            raise NodeNotFound(f"node `{node_id}` is not registered", node=node_id) from None

    @property
    def local_nodes(self) -> List[str]:
        return list(self._local)

    # -- receiving -------------------------------------------------------------------

    def receive_sync(self, node: str, timeout: Optional[float] = None) -> Message:
        """The next message for in-process node ``node``; ``Timeout`` after ``timeout`` s."""
        return Message(self.node(node).recv(timeout))

    def receive_many(self, node: str, max_messages: int = 64, timeout: float = 1.0) -> List[Message]:
        """Up to ``max_messages`` at once (waits up to ``timeout`` for the first)."""
        return [Message(m) for m in self.node(node).recv_many(max_messages, timeout)]

    async def receive(self, node: str, timeout: Optional[float] = None) -> Message:
        """Awaits the next message for ``node`` (``Timeout`` after ``timeout`` s).

        No thread hop: the coroutine takes a message already here at once, else polls the
        node without blocking, yielding to the loop between polls (at first every
        iteration, then backing off to every ``RECEIVE_POLL_MAX_S``). Cancelling it can
        never lose a message (no thread is left waiting for one)."""
        n = self.node(node)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pause, polls = 0.0, 0
        while True:
            try:
                return Message(n.recv(0.0))
            except Timeout:
                if deadline is not None and loop.time() >= deadline:
                    raise Timeout(f"no message for `{node}` in {timeout} s", what=f"a message for `{node}`",
                                  after_s=float(timeout or 0.0)) from None
            polls += 1
            if polls > RECEIVE_SPIN_POLLS:
                pause = min(RECEIVE_POLL_MAX_S, max(pause * 2, 50e-6))
            await asyncio.sleep(pause)

    async def messages(self, node: str, timeout: Optional[float] = None) -> AsyncIterator[Message]:
        """Messages for ``node`` as they come; ends after ``timeout`` s without one
        (None: never)."""
        while True:
            try:
                yield await self.receive(node, timeout)
            except Timeout:
                return

    # -- ping, topology, health ------------------------------------------------------

    def ping_sync(self, source: str, destination: str, packet_size: int = 64, count: int = 10,
                  timeout_ms: int = 1000, warmup: int = 0) -> PingResult:
        """Pings ``destination`` from in-process node ``source``: real ping frames, answered
        by the destination's node."""
        if packet_size < 0 or count <= 0:
            raise ValueError("packet_size must be >= 0 and count > 0")
        stats = self.node(source).ping(destination, size=packet_size, count=count, warmup=warmup,
                                       timeout_s=timeout_ms / 1000.0)
        return PingResult(stats, source, destination, self.routing_engine.find_optimal_path(source, destination))

    async def ping(self, source: str, destination: str, packet_size: int = 64, count: int = 10,
                   timeout_ms: int = 1000, warmup: int = 0) -> PingResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.ping_sync(source, destination, packet_size, count, timeout_ms, warmup))

    def _topology(self) -> Result:
        nodes = {}
        for nid, e in self._entries.items():
            d = dict(e)
            d["local"] = nid in self._local
            if nid in self._local:
                d["stats"] = json.loads(self._local[nid].stats_json())
            nodes[nid] = d
        return Result({
            "protocol_id": self.protocol_id,
            "profile": self.profile,
            "nodes": nodes,
            "links": list(self._links),
            "zones": list(self._zones),
            "local_nodes": list(self._local),
            "node_count": len(nodes),
            "link_count": len(self._links),
        })

    def get_topology_info_sync(self) -> Result:
        return self._topology()

    async def get_topology_info(self) -> Result:
        """Nodes (with each local node's counters), links and zones."""
        return self._topology()

    def check_node_health(self, node_id: str, timeout: float = 1.0) -> Result:
        """Asks ``node_id`` for its metrics over the fabric (or reads them, when local):
        ``healthy``, ``uptime_seconds``, ``open_connections``, ``protocol_errors``, ..."""
        if node_id not in self._entries:
            raise NodeNotFound(f"node `{node_id}` is not registered", node=node_id)
        asker = self._local.get(node_id) or next(iter(self._local.values()), None)
        if asker is None:
            raise HyperFabricError("no node runs in this process to ask from")
        try:
            m = json.loads(asker.metrics_json(None if asker.node_id == node_id else node_id, timeout))
        except HyperFabricError as e:
            return Result({"node_id": node_id, "healthy": False, "error": str(e), "error_type": type(e).__name__})
        t = m["totals"]
        return Result({
            "node_id": node_id, "healthy": True, "uptime_seconds": m["uptime_seconds"],
            "open_connections": t["open_connections"], "protocol_errors": t["protocol_errors"],
            "transfers_failed": t["transfers_failed"], "corrupt_frames_dropped": t["corrupt_frames_dropped"],
            "process": m["process"], "queues": m["queues"],
        })

    def analyze_congestion(self, path: Sequence[str]) -> Result:
        """Each hop of ``path`` as its sending node measures it (link throughput,
        utilisation, queue depths, retransmissions); hops from nodes not in this process
        are asked over the fabric."""
        if len(path) < 2:
            raise ValueError("a path names at least two nodes")
        hops = []
        for a, b in zip(path, path[1:]):
            asker = self._local.get(a) or next(iter(self._local.values()), None)
            if asker is None:
                raise HyperFabricError("no node runs in this process to ask from")
            m = json.loads(asker.metrics_json(None if asker.node_id == a else a, 1.0))
            link = next((l for l in m["links"] if l["peer"] == b), None)
            hops.append({"from": a, "to": b, "link": link, "queues": m["queues"]})
        return Result({"path": list(path), "hops": hops})

    # -- lifecycle -------------------------------------------------------------------

    def shutdown_sync(self) -> None:
        """Stops every in-process node."""
        for n in self._local.values():
            n.shutdown()
        self._local.clear()

    async def shutdown(self) -> None:
        self.shutdown_sync()

    def close(self) -> None:
        self.shutdown_sync()

    def __enter__(self) -> "HyperFabricProtocol":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown_sync()

    async def __aenter__(self) -> "HyperFabricProtocol":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.shutdown_sync()

    def __del__(self) -> None:
        try:
            self.shutdown_sync()
        except Exception:
            pass
