"""The numbers a call tree can be sorted by, and where they sit in a counter vector.

Counter vectors follow the reader's `stack_counters` order:
(alloc_bytes, alloc_count, live_bytes, live_count, peak_bytes, peak_count), then the
temporary allocations (`stack_temporary`: bytes, count).
"""

from __future__ import annotations

from memtrace_core.strenum import StrEnum

ALLOC_BYTES, ALLOC_COUNT, LIVE_BYTES, LIVE_COUNT, PEAK_BYTES, PEAK_COUNT = range(6)
TEMP_BYTES, TEMP_COUNT = 6, 7
N_COUNTERS = 8


class Metric(StrEnum):
    """What the tree measures: heap in use now, at the peak, ever allocated, calls, or the
    temporary allocations (freed by their thread within a few of its allocations)."""

    IN_USE = "in use"
    PEAK = "peak"
    TOTAL = "total allocated"
    COUNT = "allocations"
    TEMPORARY = "temporary"

    @property
    def bytes_index(self) -> int:
        """Counter index of the bytes shown for this metric."""
        return {
            "in use": LIVE_BYTES,
            "peak": PEAK_BYTES,
            "total allocated": ALLOC_BYTES,
            "allocations": ALLOC_BYTES,
            "temporary": TEMP_BYTES,
        }[self.value]

    @property
    def count_index(self) -> int:
        """Counter index of the allocation count shown for this metric."""
        return {
            "in use": LIVE_COUNT,
            "peak": PEAK_COUNT,
            "total allocated": ALLOC_COUNT,
            "allocations": ALLOC_COUNT,
            "temporary": TEMP_COUNT,
        }[self.value]

    @property
    def sort_index(self) -> int:
        """Counter index children are sorted by (largest first)."""
        return ALLOC_COUNT if self is Metric.COUNT else self.bytes_index

    def next(self) -> Metric:
        """The metric after this one, wrapping around (the `m` key)."""
        members = list(Metric)
        return members[(members.index(self) + 1) % len(members)]


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
