"""The numbers a call tree can be sorted by, and where they sit in a counter vector.

Counter vectors follow the reader's `stack_counters` order:
(alloc_bytes, alloc_count, live_bytes, live_count, peak_bytes, peak_count), then the
temporary allocations (`stack_temporary`: bytes, count).
"""

from __future__ import annotations

from memtrace_core.sizes import format_bytes, format_signed
from memtrace_core.strenum import StrEnum

ALLOC_BYTES, ALLOC_COUNT, LIVE_BYTES, LIVE_COUNT, PEAK_BYTES, PEAK_COUNT = range(6)
TEMP_BYTES, TEMP_COUNT = 6, 7
MARK_BYTES, MARK_COUNT = 8, 9  # in use now minus in use at the mark (`b`)
GROWTH_BYTES, GROWTH_COUNT = 10, 11  # in use now minus at the growth window's start
AT_BYTES, AT_COUNT = 12, 13  # in use at the timeline's cursor (`view`)
N_COUNTERS = 14
DELTA_METRICS = ("since mark", "growth")  # signed figures

__all__ = ["format_bytes", "format_signed"]  # their home is memtrace_core/sizes.py

LOCATION_SORTS = ("own", "total", "count")
"""The orders of the locations table (`memtrace table --sort`, the TUI's `s`): own bytes,
total bytes through the frame, allocation count."""
NATIVE_LOCATION_SORTS = ("user", *LOCATION_SORTS)
"""With native frames the TUI's table also sorts by `user` own bytes (the stacks whose
innermost user frame is the location), first."""


class Metric(StrEnum):
    """What the tree measures: heap in use now, at the peak, ever allocated, calls, or the
    temporary allocations (freed by their thread within a few of its allocations)."""

    IN_USE = "in use"
    PEAK = "peak"
    TOTAL = "total allocated"
    COUNT = "allocations"
    TEMPORARY = "temporary"
    GROWTH = "growth"  # in-use bytes gained per second over the window (negative: shrank)
    SINCE_MARK = "since mark"  # in use now minus in use at the mark
    AT_CURSOR = "in use at"  # in use at the timeline's cursor (not in the `m` cycle)

    @property
    def bytes_index(self) -> int:
        """Counter index of the bytes shown for this metric."""
        return {
            "in use": LIVE_BYTES,
            "peak": PEAK_BYTES,
            "total allocated": ALLOC_BYTES,
            "allocations": ALLOC_BYTES,
            "temporary": TEMP_BYTES,
            "growth": GROWTH_BYTES,
            "since mark": MARK_BYTES,
            "in use at": AT_BYTES,
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
            "growth": GROWTH_COUNT,
            "since mark": MARK_COUNT,
            "in use at": AT_COUNT,
        }[self.value]

    @property
    def sort_index(self) -> int:
        """Counter index children are sorted by (largest first)."""
        return ALLOC_COUNT if self is Metric.COUNT else self.bytes_index

    @property
    def signed(self) -> bool:
        """A change (growth, since the mark): negative figures are meaningful."""
        return self.value in DELTA_METRICS

    def next(self) -> Metric:
        """The metric after this one, wrapping around (the `m` key; the timeline's own
        metric is not in the cycle)."""
        members = [m for m in Metric if m is not Metric.AT_CURSOR]
        if self not in members:
            return Metric.IN_USE
        return members[(members.index(self) + 1) % len(members)]


def format_rate(n_per_s: float) -> str:
    """`+1.5 MiB/s`: a growth rate (rounded to whole bytes)."""
    return format_signed(int(round(n_per_s))) + "/s"
