"""Sending, multipath and data-type policies of ``HyperFabricProtocol`` (a mixin)."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

from . import _knobs, _native
from .errors import Unsupported
from .results import SendResult
from .types import DataType, PacketPriority, coerce

# Sends of at least this many bytes run in the executor when awaited (a smaller one runs on
# the loop's thread: it takes less than the hop to a thread would).
ASYNC_INLINE_MAX = 1 << 20

_COMPRESSIONS = ("off", "none", "auto", "lz4", "zstd", "snappy")
_TRANSFORMS = ("none", "topk", "fp16", "bf16", "int8", "cache")
# Transforms that apply to float32 tensors (sent through the Rust API's send_f32).
_F32_TRANSFORMS = ("topk", "fp16", "bf16", "int8")
_POLICY_KEYS = ("priority", "compression", "compression_enabled", "compression_algorithm",
                "transform", "quantization", "topk_fraction")


def _compression(enabled: Optional[bool], config: Optional[Mapping[str, Any]]) -> Optional[Union[bool, str]]:
    if config is not None:
        if not isinstance(config, Mapping):
            raise TypeError("compression_config must be a mapping (e.g. AdaptiveCompressor(...).get_config())")
        unknown = set(config) - {"algorithm", "enabled"}
        if unknown:
            raise ValueError(f"compression_config: unknown keys {sorted(unknown)} (known: algorithm, enabled)")
        if config.get("enabled") is False or enabled is False:
            return "off"
        alg = config.get("algorithm", "auto")
        if alg not in _COMPRESSIONS:
            raise ValueError(f"compression algorithm {alg!r}: expected one of {', '.join(_COMPRESSIONS)}")
        return alg
    if enabled is None:
        return None
    if not isinstance(enabled, bool):
        raise TypeError("compression_enabled must be True, False or None (the data type's policy)")
    return "auto" if enabled else "off"


def _as_f32(data: Any) -> Any:
    """``data`` as float32 values for a transform (top-k, fp16, bf16, int8): a buffer of
    format ``f``; anything else is refused (a transform of other bytes would be meaningless)."""
    view = memoryview(data)
    if view.format not in ("f", "<f", "=f"):
        raise TypeError(
            f"this data type's policy transforms float32 tensors; got a buffer of format {view.format!r} "
            "(send numpy float32, or configure the data type without a transform)"
        )
    return view


class Sender:
    """The sending half of ``HyperFabricProtocol``."""

    _opts_cache: Dict[Any, Any]

    def _opts(self, data_type: Any, priority: Any, compression: Optional[Union[bool, str]],
              latency_constraint_ns: Optional[int], bandwidth_requirement_gbps: Optional[float],
              timeout: Optional[float], name: Optional[str]) -> Any:
        dt = coerce(DataType, data_type, "data_type")
        pr = None if priority is None else coerce(PacketPriority, priority, "priority")
        if latency_constraint_ns is None:
            latency_constraint_ns = self.default_latency_constraint_ns  # type: ignore[attr-defined]
        key = (dt, pr, compression, latency_constraint_ns, bandwidth_requirement_gbps, timeout, name)
        o = self._opts_cache.get(key)
        if o is None:
            strategy = _knobs.strategy(self.enable_ml_routing, self.enable_quantum_optimization,  # type: ignore[attr-defined]
                                       dt is DataType.QUANTUM_STATE)
            o = _native.SendOpts(dt.wire, None if pr is None else pr.wire, compression,
                                 latency_constraint_ns, bandwidth_requirement_gbps, timeout, name, strategy)
            if len(self._opts_cache) < 256:
                self._opts_cache[key] = o
        return o

    def send_data_sync(
        self,
        source: str,
        destination: str,
        data: Any,
        data_type: Union[DataType, str] = DataType.TENSOR,
        priority: Union[PacketPriority, str, None] = None,
        zero_copy: bool = True,
        compression_enabled: Optional[bool] = None,
        compression_config: Optional[Mapping[str, Any]] = None,
        latency_constraint_ns: Optional[int] = None,
        bandwidth_requirement_gbps: Optional[float] = None,
        timeout: Optional[float] = None,
        name: Optional[str] = None,
        requires_quantum_entanglement: bool = False,
        encryption_enabled: Optional[bool] = None,
        callback: Optional[Callable[[SendResult], Any]] = None,
    ) -> SendResult:
        """Sends ``data`` (any C-contiguous buffer: bytes, bytearray, memoryview, numpy
        array, mmap, or a loan from :class:`~hyperfabric.BufferManager`) from in-process
        node ``source``; returns once ``destination`` acknowledged every byte.

        ``zero_copy=True`` reads ``data`` in place with the GIL released; ``False`` first
        takes a private copy (later writes to ``data`` cannot reach the wire).
        ``priority`` / ``compression_*`` left at None follow the data type's policy."""
        if requires_quantum_entanglement:
            raise Unsupported("requires_quantum_entanglement: no entanglement-distribution hardware here",
                              knob="requires_quantum_entanglement", reason="no quantum link")
        if encryption_enabled is not None:
            on = bool(self._fabric.get("encryption_enabled", False))  # type: ignore[attr-defined]
            if encryption_enabled != on:
                raise Unsupported(
                    "encryption_enabled per send: encryption is per fabric (TLS on every link: "
                    "encryption_enabled with tls_cert/tls_key/tls_ca in the fabric file); this fabric has it "
                    + ("on" if on else "off"), knob="encryption_enabled", reason="per fabric, not per send")
        if not isinstance(zero_copy, bool):
            raise TypeError("zero_copy must be True or False")
        node = self.node(source)  # type: ignore[attr-defined]
        comp = _compression(compression_enabled, compression_config)
        opts = self._opts(data_type, priority, comp, latency_constraint_ns, bandwidth_requirement_gbps, timeout, name)
        if isinstance(data, _native.Loan):
            report = node.send_loaned(data, opts)
        elif coerce(DataType, data_type, "data_type").wire in self._f32_types:  # type: ignore[attr-defined]
            report = node.send_f32(destination, _as_f32(data), opts)
        else:
            if not zero_copy:
                data = bytes(memoryview(data).cast("B")) if not isinstance(data, bytes) else data
            report = node.send(destination, data, opts)
        result = SendResult(report)
        if callback is not None:
            callback(result)
        return result

    async def send_data(self, source: str, destination: str, data: Any, **kwargs: Any) -> SendResult:
        """Awaitable :meth:`send_data_sync` (same keywords). Sends under 1 MiB run on the
        loop's thread (no thread hop); larger ones in the default executor."""
        try:
            size = memoryview(data).nbytes if not isinstance(data, _native.Loan) else len(data)
        except TypeError:
            size = 0  # send_data_sync raises the TypeError
        if size < ASYNC_INLINE_MAX:
            return self.send_data_sync(source, destination, data, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.send_data_sync(source, destination, data, **kwargs))

    def send_many(self, source: str, destination: str, items: Sequence[Any],
                  data_type: Union[DataType, str] = DataType.TENSOR,
                  priority: Union[PacketPriority, str, None] = None,
                  compression_enabled: Optional[bool] = None, inflight: int = 8) -> Dict[str, Any]:
        """Sends every buffer of ``items`` in one call, up to ``inflight`` transfers in
        flight, the GIL released throughout: ``{count, bytes, seconds, latency_ns_max}``."""
        node = self.node(source)  # type: ignore[attr-defined]
        opts = self._opts(data_type, priority, _compression(compression_enabled, None), None, None, None, None)
        return node.send_many(destination, items, opts, inflight)

    def configure_multipath(self, paths: Sequence[Sequence[str]], load_balancing_algorithm: str = "weighted_round_robin",
                            weights: Optional[Sequence[float]] = None, failover_enabled: bool = True,
                            health_check_interval: float = 1.0) -> None:
        """Stripes later sends from ``paths[i][0]`` to ``paths[i][-1]`` over the paths (each
        a list of node ids: source, relays..., destination; a path is named by its first
        hop, the route after it is the router's). ``weights``: shares (default equal)."""
        if not paths:
            raise ValueError("configure_multipath needs at least one path")
        ends = {(p[0], p[-1]) for p in paths if len(p) >= 2}
        if len(ends) != 1 or any(len(p) < 2 for p in paths):
            raise ValueError("every path needs a source and a destination, the same for all paths")
        if failover_enabled is not True:
            raise Unsupported("failover_enabled=False: a broken path's chunks always move to the others "
                              "(the fabric never drops data silently)", knob="failover_enabled",
                              reason="failover cannot be turned off")
        w = list(weights) if weights is not None else [1.0] * len(paths)
        if len(w) != len(paths):
            raise ValueError(f"{len(w)} weights for {len(paths)} paths")
        src, dst = ends.pop()
        node = self.node(src)  # type: ignore[attr-defined]
        node.configure_multipath(dst, [(p[1], float(x)) for p, x in zip(paths, w)],
                                 load_balancing_algorithm, float(health_check_interval))

    def configure_data_types(self, policies: Mapping[Any, Mapping[str, Any]]) -> None:
        """Per data type defaults for later sends on every in-process node: ``priority``,
        ``compression`` (bool or algorithm), ``transform`` (``topk``, ``fp16``, ``bf16``,
        ``int8``, ``cache``; alias ``quantization``) and ``topk_fraction``."""
        parsed: Dict[str, Dict[str, Any]] = {}
        for dt, cfg in policies.items():
            d = coerce(DataType, dt, "data type")
            unknown = set(cfg) - set(_POLICY_KEYS)
            if unknown:
                raise ValueError(f"data type {d.name}: unknown keys {sorted(unknown)} (known: {', '.join(_POLICY_KEYS)})")
            pol: Dict[str, Any] = {}
            if "priority" in cfg:
                pol["priority"] = coerce(PacketPriority, cfg["priority"], "priority").wire
            comp = cfg.get("compression", cfg.get("compression_enabled"))
            if "compression_algorithm" in cfg:
                comp = cfg["compression_algorithm"]
            if comp is not None:
                pol["compression"] = ("auto" if comp else "off") if isinstance(comp, bool) else str(comp)
            tr = cfg.get("transform", cfg.get("quantization"))
            if tr is not None:
                if tr not in _TRANSFORMS:
                    raise ValueError(f"transform {tr!r}: expected one of {', '.join(_TRANSFORMS)}")
                pol["transform"] = tr
            frac = cfg.get("topk_fraction")
            if frac is not None:
                pol["topk_fraction"] = float(frac)
            parsed[d.wire] = pol
        for wire, pol in parsed.items():
            if pol.get("transform") in _F32_TRANSFORMS:
                self._f32_types.add(wire)  # type: ignore[attr-defined]
            elif "transform" in pol:
                self._f32_types.discard(wire)  # type: ignore[attr-defined]
            for n in self._local.values():  # type: ignore[attr-defined]
                n.configure_data_type(wire, **pol)
            self._policies[wire] = pol  # type: ignore[attr-defined]

    def data_type_policy(self, source: str, data_type: Union[DataType, str]) -> Dict[str, Any]:
        """The policy in-process node ``source`` applies to ``data_type``."""
        return self.node(source).policy(coerce(DataType, data_type, "data_type").wire)  # type: ignore[attr-defined]
