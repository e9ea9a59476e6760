"""A small TOML writer for the fabric documents this package generates (tables, arrays of
tables, strings, numbers, booleans, arrays, inline tables). Reading uses ``tomllib``."""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"TOML cannot hold {v!r}")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to a fabric file")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def dumps(doc: Dict[str, Any]) -> str:
    """``doc``: top-level keys map to a table (dict) or an array of tables (list of dicts)."""
    out: List[str] = []
    for name, section in doc.items():
        if isinstance(section, dict):
            scalars = {k: v for k, v in section.items() if not isinstance(v, dict) or k == "metadata"}
            tables = {k: v for k, v in section.items() if isinstance(v, dict) and k != "metadata"}
            if scalars:
                out.append(f"[{_key(name)}]")
                out.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars.items() if v is not None)
                out.append("")
            for sub, body in tables.items():
                out.append(f"[{_key(name)}.{_key(sub)}]")
                out.extend(f"{_key(k)} = {_value(v)}" for k, v in body.items() if v is not None)
                out.append("")
        else:
            for entry in section:
                out.append(f"[[{_key(name)}]]")
                out.extend(f"{_key(k)} = {_value(v)}" for k, v in entry.items() if v is not None)
                out.append("")
    return "\n".join(out)
