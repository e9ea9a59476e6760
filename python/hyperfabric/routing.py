"""``routing_engine``: routes over the fabric's topology, computed by the Rust router."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from . import _native, _toml

if TYPE_CHECKING:
    from .protocol import HyperFabricProtocol

STRATEGIES = ("shortest_path", "lowest_latency", "highest_bandwidth", "load_balanced", "predictive", "quantum_optimized")


class RoutingEngine:
    """``find_optimal_path(a, b)`` returns the node ids of the best route; ``route(a, b)``
    the whole route (hops, latency_ns, bandwidth_gbps)."""

    def __init__(self, protocol: "HyperFabricProtocol") -> None:
        self._p = protocol

    def route(self, source: str, destination: str, strategy: Optional[str] = None) -> Dict[str, Any]:
        s = strategy or ("predictive" if self._p.enable_ml_routing else "lowest_latency")
        if s not in STRATEGIES:
            raise ValueError(f"strategy {s!r}: expected one of {', '.join(STRATEGIES)}")
        text = _toml.dumps(self._p._doc())
        return json.loads(_native.find_route(text, source, destination, s))

    def find_optimal_path(self, source: str, destination: str, strategy: Optional[str] = None) -> List[str]:
        r = self.route(source, destination, strategy)
        return list(r.get("path") or r.get("nodes") or [])
