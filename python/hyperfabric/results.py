"""What operations return: objects with attributes that are also read-only mappings (the
original package returned dicts), carrying the Rust library's report unchanged."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, Iterator, List


class _Result(Mapping):
    """Attribute and mapping access over one dict of figures."""

    __slots__ = ("_d",)

    def __init__(self, d: Dict[str, Any]) -> None:
        object.__setattr__(self, "_d", d)

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._d[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def to_dict(self) -> Dict[str, Any]:
        return dict(self._d)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._d!r})"


class SendResult(_Result):
    """A completed send: ``bytes``, ``latency_ns`` (call to end-to-end ack),
    ``throughput_gbps``, ``path``, ``hops`` (with the transport of each), ``transports``,
    ``compression_ratio``, ``compression``, ``transform``, ``retransmitted_bytes``,
    ``failovers``, ``data_type``, ``priority``; and the original package's names
    ``success``, ``bytes_transferred``, ``actual_latency_ns``, ``path_taken``."""

    __slots__ = ()

    def __init__(self, report: Dict[str, Any]) -> None:
        d = dict(report)
        d["success"] = True
        d["bytes_transferred"] = d["bytes"]
        d["actual_latency_ns"] = d["latency_ns"]
        d["latency_ms"] = d["latency_ns"] / 1e6
        d["path_taken"] = d["path"]
        d["transports"] = [h["transport"] for h in d["hops"]]
        super().__init__(d)


class PingResult(_Result):
    """A ping: ``latency_ns`` (median one-way), ``latency_ms``, ``rtt_ns`` (median round
    trip), ``bandwidth_gbps`` (packet bits over one-way latency), ``packet_loss_rate``
    (0..1), ``path``, ``transport``, and the Rust statistics (``min_ns`` ... ``p999_ns``)."""

    __slots__ = ()

    def __init__(self, stats: Dict[str, Any], source: str, destination: str, path: List[str]) -> None:
        d = dict(stats)
        one_way = d["median_ns"]
        d.update(
            success=d["received"] > 0,
            source=source,
            destination=destination,
            latency_ns=one_way,
            latency_ms=one_way / 1e6,
            rtt_ns=d["rtt_median_ns"],
            rtt_ms=d["rtt_median_ns"] / 1e6,
            bandwidth_gbps=(d["size_bytes"] * 8 / one_way) if one_way else 0.0,
            packet_loss_rate=d["loss_pct"] / 100.0,
            path=path,
        )
        super().__init__(d)


class Result(_Result):
    """Any other report (topology, health, congestion, configuration)."""

    __slots__ = ()
