"""The timeline of a capture read at once (`view`), or of a running program (`live`):
every stack's memory in use at up to MAX_POINTS instants, taken while the capture is read
(or as the live tree updates), so the time cursor moves between them without reading
anything again. A live instant holds the reader's state when the tree updated, labelled
with the last TICK's time (the records of the < 10 ms since that TICK are in it).

Each instant is a TICK of the capture (the reader stopped right after it), so its figures
are exact for that moment. Instants are spaced evenly in the program's clock: when there
would be more than MAX_POINTS, or their storage would need more than BUDGET bytes, every
other one is dropped and the spacing doubles (the memory stays bounded on any capture).
The peak is kept as its own instant, from the reader's exact per-stack peak figures.

An instant stores only the stacks that changed since the instant before (a change set,
model/_snapshots.pyx): a capture read at once takes them from the reader's changed list,
which costs what changed, not every stack at every instant. Some instants are keyframes
(every stack): one is taken when the changes since the last keyframe outgrow a whole
snapshot, so rebuilding any instant costs at most about two snapshots' worth of work.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from pathlib import Path

from memtrace_core.model import _snapshots

MAX_POINTS = 512
BUDGET = 64 << 20  # bytes of stored instants at most
FIRST_STEP_US = 10_000  # the capture's own tick period: instants start this fine
SHARED_SWITCH_S = 0.001  # the GIL's switch interval while other threads share the reading


class Instant:
    """Every stack's (in-use bytes, count) at one moment (`snapshot`: int64 pairs by stack
    id), with the heap's figures then. A timeline's instant rebuilds its snapshot from the
    changes it stores when asked."""

    __slots__ = ("t_us", "heap_bytes", "heap_allocations", "n_stacks", "_full", "_changes",
                 "_timeline", "_asked")

    def __init__(self, t_us: int, heap_bytes: int, heap_allocations: int,
                 snapshot: bytes) -> None:
        self.t_us = t_us
        self.heap_bytes = heap_bytes
        self.heap_allocations = heap_allocations
        self.n_stacks = len(snapshot) // 16
        self._full: bytes | None = snapshot  # a keyframe (or a standalone instant)
        self._changes = b""  # since the timeline's instant before
        self._timeline: Timeline | None = None
        self._asked = False  # its snapshot was read (the UI may hold it): kept when dropped

    @property
    def snapshot(self) -> bytes:
        if self._full is not None:
            return self._full
        if self._timeline is None:
            raise LookupError("an instant dropped from its timeline before it was shown")
        self._asked = True
        return self._timeline._rebuild(self)

    def stored_bytes(self) -> int:
        return len(self._changes) + (len(self._full) if self._full is not None else 0)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Instant):
            return NotImplemented
        return ((self.t_us, self.heap_bytes, self.heap_allocations)
                == (other.t_us, other.heap_bytes, other.heap_allocations)
                and self.snapshot == other.snapshot)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Instant(t_us={self.t_us}, heap_bytes={self.heap_bytes}, "
                f"heap_allocations={self.heap_allocations}, stacks={self.n_stacks})")


class Timeline:
    def __init__(self) -> None:
        self.points: list[Instant] = []
        self.peak: Instant | None = None
        self.step_us = FIRST_STEP_US
        self._state = bytearray()  # every stack at the last instant
        self._since_key = 0  # change bytes stored since the last keyframe
        self._bytes = 0  # bytes stored by every instant
        self._cache: tuple[Instant, bytes] | None = None  # the last instant rebuilt

    def add(self, reader) -> None:
        """The reader stopped at an instant: keep it (the changes from a whole snapshot of
        the reader; `take` is cheaper when the timeline may empty its changed list)."""
        snap = reader.live_snapshot()
        self._push(reader, _snapshots.diff(self._state, snap), len(snap) // 16)

    def take(self, reader) -> None:
        """The reader stopped at an instant, and nothing else takes its changed list (a
        capture read at once): keep it, from the stacks changed since the last one."""
        if not _snapshots.takes_changes(reader):
            self.add(reader)
            return
        self._push(reader, _snapshots.take_live_changes(reader), reader.n_stacks)

    def _push(self, reader, changes: bytes, n_stacks: int) -> None:
        last = self.points[-1] if self.points else None
        if (last is not None and not changes and n_stacks == last.n_stacks
                and (last.t_us, last.heap_bytes, last.heap_allocations)
                == (reader.last_time_us, reader.heap_bytes, reader.heap_allocations)):
            return  # nothing happened since
        state = self._state
        if 16 * n_stacks > len(state):
            state.extend(bytes(16 * n_stacks - len(state)))
        _snapshots.apply(state, changes)
        point = Instant(reader.last_time_us, reader.heap_bytes, reader.heap_allocations, b"")
        point.n_stacks = n_stacks
        point._timeline = self
        if not self.points or self._since_key + len(changes) >= len(state):
            point._full = bytes(state)  # a keyframe: the changes since the last one are big
            self._since_key = 0
        else:
            point._full = None
            point._changes = changes
            self._since_key += len(changes)
        self.points.append(point)
        self._bytes += point.stored_bytes()
        while len(self.points) > MAX_POINTS or (self._bytes > BUDGET and len(self.points) > 2):
            self._thin()

    def _thin(self) -> None:
        """Every other instant dropped (the last one kept): a dropped instant's changes go
        to the instant after it, which becomes a keyframe when the dropped one was one."""
        points = self.points
        kept = points[::2]
        if kept[-1] is not points[-1]:
            kept.append(points[-1])
        keep = {id(p) for p in kept}
        dropped = [p for p in points if id(p) not in keep]
        held = {id(p): self._rebuild(p) for p in dropped if p._full is None and p._asked}
        for i, point in enumerate(points[:-1]):
            if id(point) in keep:
                continue
            after = points[i + 1]
            if after._full is not None:
                continue
            if point._full is not None:
                after._full = self._rebuild(after)
                after._changes = b""
            else:
                after._changes = _snapshots.merge(point._changes, after._changes)
        for point in dropped:  # one the UI may hold keeps its own copy
            if id(point) in held:
                point._full = held[id(point)]
                point._changes = b""
            point._timeline = None
        self.points = kept
        self._bytes = sum(p.stored_bytes() for p in kept)
        self._since_key = 0
        for p in reversed(kept):
            if p._full is not None:
                break
            self._since_key += len(p._changes)
        self._cache = None
        self.step_us *= 2

    def _rebuild(self, point: Instant) -> bytes:
        """An instant's snapshot: its keyframe with the changes up to it applied."""
        cached = self._cache
        if cached is not None and cached[0] is point:
            return cached[1]
        i = bisect_left(self.points, point.t_us, key=lambda p: p.t_us)
        while i < len(self.points) and self.points[i] is not point:
            i += 1  # the end may share its TICK's time with the instant before
        if i >= len(self.points):
            raise ValueError("not an instant of this timeline")
        k = i
        while self.points[k]._full is None:
            k -= 1
        buf = bytearray(16 * point.n_stacks)
        key = self.points[k]._full
        buf[:len(key)] = key
        for p in self.points[k + 1 : i + 1]:
            _snapshots.apply(buf, p._changes)
        out = bytes(buf)
        self._cache = (point, out)
        return out

    def next_stop(self) -> int:
        return (self.points[-1].t_us if self.points else 0) + self.step_us

    def finish(self, reader) -> None:
        """The end state and the peak (exact per stack, from the reader's peak figures)."""
        self.take(reader)  # records after the last TICK too: same time, a later state
        self.peak = peak_instant(reader)

    def index_at(self, t_us: int) -> int:
        """The instant nearest to t_us."""
        best = 0
        for i, p in enumerate(self.points):
            if abs(p.t_us - t_us) < abs(self.points[best].t_us - t_us):
                best = i
        return best

    def stored_bytes(self) -> int:
        """Bytes the instants hold (keyframes and change sets)."""
        return self._bytes


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
        timeline.take(stopped)
        return timeline.next_stop()

    reader.stop_at(0)
    switch = sys.getswitchinterval()
    if share_cpu:  # the decoder takes the GIL back after every TICK, CODE, MAPS record
        sys.setswitchinterval(min(switch, SHARED_SWITCH_S))  # (thousands): wait less for it
    try:
        replay(path, reader, at_stop, progress)
    finally:
        reader.decode_without_gil = False
        sys.setswitchinterval(switch)
    timeline.finish(reader)
    return reader, timeline
