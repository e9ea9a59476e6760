"""``AdaptiveCompressor``: the compression a send asks for, as the guide writes it.

``get_config()`` is what ``send_data(compression_config=...)`` takes. The fabric compresses
per chunk in Rust (LZ4, Zstandard, Snappy); ``auto`` picks per transfer from how well its
first chunk compresses, and a chunk that does not shrink travels raw."""
from __future__ import annotations

from typing import Any, Dict

ALGORITHMS = ("auto", "lz4", "zstd", "snappy", "off")


class AdaptiveCompressor:
    """``algorithm``: ``auto`` (default), ``lz4``, ``zstd``, ``snappy`` or ``off``."""

    def __init__(self, algorithm: str = "auto", enabled: bool = True) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}")
        if not isinstance(enabled, bool):
            raise TypeError("enabled must be True or False")
        self.algorithm = algorithm
        self.enabled = enabled and algorithm != "off"

    def get_config(self) -> Dict[str, Any]:
        return {"algorithm": self.algorithm if self.enabled else "off", "enabled": self.enabled}

    def __repr__(self) -> str:
        return f"AdaptiveCompressor(algorithm={self.algorithm!r}, enabled={self.enabled})"
