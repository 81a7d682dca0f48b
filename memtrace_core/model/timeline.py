"""The timeline of a capture read at once (`view`), or of a running program (`live`):
every stack's memory in use at up to MAX_POINTS instants, taken while the capture is read
(or as the live tree updates), so the time cursor moves between them without reading
anything again. A live instant holds the reader's state when the tree updated, labelled
with the last TICK's time (the records of the < 10 ms since that TICK are in it).

Each instant is a TICK of the capture (the reader stopped right after it), so its figures
are exact for that moment. Instants are spaced evenly in the program's clock: when there
would be more than MAX_POINTS, or the snapshots would need more than BUDGET bytes, every
other one is dropped and the spacing doubles (the memory stays bounded on any capture).
The peak is kept as its own instant, from the reader's exact per-stack peak figures.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path

MAX_POINTS = 512
BUDGET = 64 << 20  # bytes of snapshots at most
FIRST_STEP_US = 10_000  # the capture's own tick period: instants start this fine


@dataclass(frozen=True, slots=True)
class Instant:
    """Every stack's (in-use bytes, count) at one moment: int64 pairs by stack id."""

    t_us: int
    heap_bytes: int
    heap_allocations: int
    snapshot: bytes


@dataclass
class Timeline:
    points: list[Instant] = field(default_factory=list)
    peak: Instant | None = None
    step_us: int = FIRST_STEP_US
    _bytes: int = 0

    def add(self, reader) -> None:
        """The reader stopped at an instant: keep it, thinning when over the bounds."""
        snap = reader.live_snapshot()
        self.points.append(Instant(reader.last_time_us, reader.heap_bytes,
                                   reader.heap_allocations, snap))
        self._bytes += len(snap)
        while len(self.points) > MAX_POINTS or (self._bytes > BUDGET and len(self.points) > 2):
            kept = self.points[::2]
            if kept[-1] is not self.points[-1]:
                kept.append(self.points[-1])
            self.points = kept
            self._bytes = sum(len(p.snapshot) for p in kept)
            self.step_us *= 2

    def next_stop(self) -> int:
        return (self.points[-1].t_us if self.points else 0) + self.step_us

    def finish(self, reader) -> None:
        """The end state and the peak (exact per stack, from the reader's peak figures)."""
        if not self.points or self.points[-1].t_us != reader.last_time_us:
            self.points.append(Instant(reader.last_time_us, reader.heap_bytes,
                                       reader.heap_allocations, reader.live_snapshot()))
        self.peak = peak_instant(reader)

    def index_at(self, t_us: int) -> int:
        """The instant nearest to t_us."""
        best = 0
        for i, p in enumerate(self.points):
            if abs(p.t_us - t_us) < abs(self.points[best].t_us - t_us):
                best = i
        return best


def peak_instant(reader) -> Instant:
    """The peak so far, exact per stack (the reader's peak figures)."""
    snapshot = getattr(reader, "peak_snapshot", None)
    if snapshot is not None:  # the C reader: one copy, no tuple per stack
        return Instant(reader.peak_time_us, reader.peak_bytes, reader.peak_allocations,
                       snapshot())
    peak = array("q")
    for row in reader.stacks():
        peak.extend(row[7:9])
    return Instant(reader.peak_time_us, reader.peak_bytes, reader.peak_allocations,
                   peak.tobytes())


def read_with_timeline(path: str | Path, progress=None, temporary_threshold: int = 1,
                       while_reading=None, share_cpu: bool = False):
    """(reader, timeline) of a whole capture: read_capture's reader (the same errors and
    partial reads), with the instants taken on the way. while_reading(reader) is called
    as the file's bytes go by (with progress). share_cpu: other threads run while the
    records are decoded (none may touch this reader meanwhile)."""
    from memtrace_core.reader import new_reader, replay

    reader = new_reader(temporary_threshold)
    reader.decode_without_gil = share_cpu
    timeline = Timeline()
    if while_reading is not None:
        shown = progress

        def progress(done: int, total: int) -> None:
            if shown is not None:
                shown(done, total)
            while_reading(reader)

    def at_stop(stopped) -> int:
        timeline.add(stopped)
        return timeline.next_stop()

    reader.stop_at(0)
    try:
        replay(path, reader, at_stop, progress)
    finally:
        reader.decode_without_gil = False
    timeline.finish(reader)
    return reader, timeline
