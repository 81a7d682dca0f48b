"""Byte sizes for people, defined once: how memtrace prints them (`1.5 MiB`, exact below
1 KiB) and how it reads them from an option (`4096`, `512KiB`, `1MB`)."""

from __future__ import annotations

import math
import re

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`4096`, `10KiB`, `2MB`, `1.5 MiB` as bytes (decimal and binary units); ValueError for
    anything else."""
    m = _SIZE.match(text)
    if m is None or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r}")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not math.isfinite(value):  # hundreds of digits: no size
        raise ValueError(f"not a size: {text!r}")
    return int(value)


def format_bytes(n: int) -> str:
    """Human-readable bytes, exact below 1 KiB: `812 B`, `1.5 KiB`, `3.2 MiB`."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024.0
        if value < 1024.0 or unit == "TiB":
            return f"{value:.1f} {unit}"
    return f"{n} B"  # pragma: no cover


def format_signed(n: int) -> str:
    """`+1.5 MiB`, `-812 B`, `±0 B`: a change of bytes."""
    sign = "+" if n > 0 else "-" if n < 0 else "±"
    return sign + format_bytes(abs(n))
