"""Byte sampling (`--sample BYTES`): the size's parsing and how estimates are labelled.

The tracer records an allocation when it reaches its thread's next sample point, drawn at an
exponentially distributed byte distance (mean BYTES); the reader weighs each one (see
docs/FORMAT.md). Every figure from a sampled capture is an estimate and says so.
"""

from __future__ import annotations

import os

SEED_ENV = "MEMTRACE_SAMPLE_SEED"
"""A fixed seed for the per-thread distances (deterministic tests); unset: from the clock."""

ESTIMATE_MARK = "≈"

MAX_MEAN = 1 << 40


def parse_sample_bytes(text: str) -> int:
    """`512KiB`, `1MB`, `65536` as bytes; ValueError with the message for a bad size."""
    from memtrace_core.sizes import parse_size

    try:
        value = parse_size(text)
    except ValueError:
        raise ValueError(
            f"invalid size {text!r} (use bytes or a unit: 65536, 512KiB, 1MB)") from None
    if not 1 <= value <= MAX_MEAN:
        raise ValueError(f"sampling mean {text!r} must be 1 B to 1 TiB")
    return value


def seed_from_env(environ: dict[str, str] | None = None) -> int:
    """MEMTRACE_SAMPLE_SEED as a positive integer, 0 when unset or not a number."""
    value = (os.environ if environ is None else environ).get(SEED_ENV, "").strip()
    try:
        seed = int(value, 0)
    except ValueError:
        return 0
    return seed & ((1 << 64) - 1)


def size_text(n: int) -> str:
    """`512 KiB`, `1 MiB`, `1.5 MiB`, `100000 B`: a sampling mean as people write it."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            value = n / factor
            return f"{value:g} {unit}" if (n * 10) % factor == 0 else f"{value:.1f} {unit}"
    return f"{n} B"


def sample_bytes(header: dict) -> int:
    """The capture's sampling mean (0: exact)."""
    value = (header or {}).get("sample_bytes") or 0
    return value if isinstance(value, int) and value > 0 else 0


def describe(mean: int) -> str:
    """`sampled every ~512 KiB` (the words every report and the UI use)."""
    return f"sampled every ~{size_text(mean)}"
