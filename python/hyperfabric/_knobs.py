"""How each keyword of ``HyperFabricProtocol`` takes effect: a ``[fabric]`` field of the
fabric file the nodes run with, a per-send default, or a refusal with the reason.

``apply`` returns the ``[fabric]`` overrides and a record of what every given keyword did
(``HyperFabricProtocol.knobs``); nothing is accepted and then ignored."""
from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Dict, Optional, Tuple

from .errors import Unsupported

_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")


def _pos_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int (got {type(v).__name__})")
    if v <= 0:
        raise ValueError(f"{name} must be > 0 (got {v})")
    return v


def _bool(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"{name} must be True or False (got {v!r})")
    return v


def numa_nodes() -> int:
    """NUMA nodes of this machine (1 where the kernel says nothing)."""
    try:
        return max(1, sum(1 for d in os.listdir("/sys/devices/system/node") if d.startswith("node") and d[4:].isdigit()))
    except OSError:
        return 1


def refuse(knob: str, reason: str) -> Unsupported:
    return Unsupported(f"{knob}: {reason}", knob=knob, reason=reason)


def apply(kw: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """``kw``: the keywords the caller gave (None = not given). Returns (overrides, record)."""
    fab: Dict[str, Any] = {}
    rec: Dict[str, str] = {}

    def field(knob: str, key: str, value: Any) -> None:
        fab[key] = value
        rec[knob] = f"fabric.{key} = {value!r}"

    if kw.get("buffer_pool_size") is not None:
        field("buffer_pool_size", "buffer_pool_buffers", _pos_int("buffer_pool_size", kw["buffer_pool_size"]))
    if kw.get("buffer_size") is not None:
        # The guide's BufferManager(buffer_size): bytes of one shared-memory pool slot.
        field("buffer_size", "buffer_pool_slot_bytes", _pos_int("buffer_size", kw["buffer_size"]))
    if kw.get("max_packet_size") is not None:
        field("max_packet_size", "max_packet_size", _pos_int("max_packet_size", kw["max_packet_size"]))
    if kw.get("congestion_control") is not None:
        cc = kw["congestion_control"]
        if not isinstance(cc, str) or not cc:
            raise TypeError("congestion_control must be a TCP congestion algorithm name (e.g. 'bbr', 'cubic', 'default')")
        field("congestion_control", "congestion_control", cc)
    if kw.get("tcp_no_delay") is not None:
        field("tcp_no_delay", "tcp_nodelay", _bool("tcp_no_delay", kw["tcp_no_delay"]))
    rcv, snd = kw.get("socket_recv_buffer"), kw.get("socket_send_buffer")
    if rcv is not None or snd is not None:
        sizes = {_pos_int(n, v) for n, v in (("socket_recv_buffer", rcv), ("socket_send_buffer", snd)) if v is not None}
        if len(sizes) > 1:
            raise ValueError(
                "socket_recv_buffer and socket_send_buffer differ: the fabric sets one size for both "
                "directions of a socket (fabric.socket_buffer_bytes); give one value"
            )
        size = sizes.pop()
        fab["socket_buffer_bytes"] = size
        for n, v in (("socket_recv_buffer", rcv), ("socket_send_buffer", snd)):
            if v is not None:
                rec[n] = f"fabric.socket_buffer_bytes = {size}"
    if kw.get("preemptive_routing") is not None:
        # Urgent priorities get their own connection and lower ones defer to them: QoS.
        field("preemptive_routing", "qos_enabled", _bool("preemptive_routing", kw["preemptive_routing"]))
    if kw.get("interrupt_driven") is not None:
        on = _bool("interrupt_driven", kw["interrupt_driven"])
        fab["idle_strategy"] = "spin_park" if on else "busy_spin"
        fab["busy_poll"] = not on
        rec["interrupt_driven"] = f"fabric.idle_strategy = {fab['idle_strategy']!r}, fabric.busy_poll = {not on}"
    if kw.get("enable_fault_tolerance") is not None:
        on = _bool("enable_fault_tolerance", kw["enable_fault_tolerance"])
        if not on:
            field("enable_fault_tolerance", "max_retransmits", 0)
            rec["enable_fault_tolerance"] += " (a lost frame fails the send instead of being resent)"
        else:
            rec["enable_fault_tolerance"] = "retransmission and multipath failover on (the profile's max_retransmits)"
    if kw.get("kernel_bypass"):
        raise refuse(
            "kernel_bypass",
            "no RDMA engine (UCX) is built into this HyperFabric; between processes of one host the "
            "shared-memory transport already moves data without the kernel (transport='shm')",
        )
    if kw.get("kernel_bypass") is False:
        rec["kernel_bypass"] = "off (TCP between hosts, shared memory inside one)"
    if kw.get("numa_aware") is not None:
        on = _bool("numa_aware", kw["numa_aware"])
        if on:
            n = numa_nodes()
            if n == 1:
                warnings.warn(
                    "numa_aware=True: this machine has one NUMA node, there is nothing to place; "
                    "set metadata numa_node / cpu_affinity per node in the fabric file where it has more",
                    RuntimeWarning, stacklevel=3,
                )
                rec["numa_aware"] = "refused with a warning: one NUMA node here"
            else:
                raise refuse(
                    "numa_aware",
                    f"this machine has {n} NUMA nodes: place each node with metadata numa_node and "
                    "cpu_affinity in the fabric file (NodeSignature.metadata); no automatic placement",
                )
        else:
            rec["numa_aware"] = "off"
    if kw.get("license_tier") is not None:
        warnings.warn(
            "license_tier has no effect: HyperFabric is Apache-2.0 software without license tiers",
            RuntimeWarning, stacklevel=3,
        )
        rec["license_tier"] = "refused with a warning: no license tiers"
    return fab, rec


def log_level(level: Any) -> int:
    """Sets the ``hyperfabric`` logger's level; returns it."""
    if isinstance(level, int) and not isinstance(level, bool):
        value = level
    elif isinstance(level, str) and level.upper() in _LOG_LEVELS:
        value = getattr(logging, level.upper())
    else:
        raise ValueError(f"log_level {level!r}: expected one of {', '.join(_LOG_LEVELS)} or an int")
    logging.getLogger("hyperfabric").setLevel(value)
    return value


def strategy(ml: bool, quantum: bool, data_type_is_quantum: bool) -> Optional[str]:
    """The route strategy a send takes: quantum-optimised for quantum states when asked,
    predictive (learned link latencies) with ML routing, else the router's default."""
    if quantum and data_type_is_quantum:
        return "quantum_optimized"
    if ml:
        return "predictive"
    return None
