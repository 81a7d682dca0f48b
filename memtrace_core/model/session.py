"""One profiled program as the UI sees it: reader + call tree + status, behind one lock.

`memtrace view` builds a finished session from a capture file; `memtrace live` feeds one
from a pipe in a background thread (feed.py). Widgets read it only under `lock`, and only
through these headless objects, never the wire format.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from memtrace_core.model.calltree import CallTree
from memtrace_core.model.metrics import GROWTH_BYTES, MARK_BYTES, N_COUNTERS
from memtrace_core.sampling import sample_bytes

HISTORY_POINTS = 4096  # chart resolution kept, whatever the run's length


@dataclass(frozen=True, slots=True)
class Summary:
    """The header line's numbers at one moment."""

    pid: int
    command: str
    status: str
    elapsed_s: float
    heap_bytes: int
    peak_bytes: int
    peak_time_s: float
    allocs_per_s: float
    records_per_s: float
    pending_symbols: int
    records: int
    native: bool
    thread: tuple[int, ...] | None = None  # the chosen thread's counters (metrics order)
    processes: int = 0  # processes traced, this one included, when following children
    untraced_children: int = 0  # child processes the program ran untraced, so far
    sample_bytes: int = 0  # a sampled capture's mean: every figure is an estimate
    growth_per_s: float = 0.0  # the whole heap's growth rate over the window
    mark_time_s: float | None = None  # the mark (`b`), program clock; None: no mark
    since_mark_bytes: int = 0  # the heap now minus at the mark
    cursor_s: float | None = None  # the timeline's cursor (`view`); None: now
    cursor_heap_bytes: int = 0
    peak_by_s: float = 0.0  # the first tick after the peak (reader.peak_by_us), or now
    reserved_bytes: int = 0  # address space reserved (docs/FORMAT.md): not heap


class Session:
    """Reader, model and program status; `lock` guards all of them."""

    def __init__(self, reader, tree: CallTree | None = None, *, live: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.reader = reader
        self.tree = tree if tree is not None else CallTree(reader)
        self.live = live
        self.clock = clock
        self.lock = threading.RLock()
        self.timeline = None  # model/timeline.py's Timeline of a capture read at once
        self.running = live
        self.detached = False
        self.exit_code: int | None = None
        self.end_note: str | None = None  # why a followed stream ended without an exit
        self.error: str | None = None
        self.log_path: str | None = None
        # `live --follow-fork`: the program's children write CHILD_PREFIX.PID captures
        self.child_prefix: str | None = None
        self.started = clock()
        self.ended: float | None = None
        self._samples: deque[tuple[float, int, int]] = deque(maxlen=64)
        self._points: list[tuple[int, int, int]] = []
        self._hist_seen = 0

    # -- status ----------------------------------------------------------------------------
    def status_text(self) -> str:
        """running / exited with status N / detached / capture complete or incomplete."""
        if self.error:
            return f"error: {self.error}"
        if self.live:
            if self.detached:
                return "detached (running untraced)"
            if self.running:
                return "running"
            if self.end_note:
                return self.end_note
            if self.exit_code is None:
                return "exited"
            if self.exit_code < 0:
                return f"killed by signal {-self.exit_code}"
            return f"exited with status {self.exit_code}"
        trailer = self.reader.trailer
        if self.reader.complete and trailer is not None:
            code = trailer.get("exit_code")
            if code is not None and code < 0:
                return f"capture: killed by signal {-code}"
            return "capture: exited" + (f" with status {code}" if code is not None else "")
        writing = getattr(self.reader, "being_written", 0)  # all processes, read while running
        if writing:
            return f"captures as read: {writing} still running"
        return "capture: incomplete"

    def mark_exited(self, exit_code: int | None) -> None:
        self.running = False
        self.exit_code = exit_code
        self.ended = self.clock()

    def sample_rates(self) -> None:
        """Remember (time, allocations, records) to compute per-second rates."""
        f = self.tree.figures
        self._samples.append((self.clock(), f.total_allocations, f.records))

    def _rates(self) -> tuple[float, float]:
        r = self.tree.figures
        if not self.live:
            secs = max(r.last_time_us / 1e6, 1e-9)
            return (r.total_allocations / secs, r.records / secs) if r.last_time_us else (0, 0)
        if len(self._samples) < 2:
            return 0.0, 0.0
        now = self._samples[-1]
        then = self._samples[0]
        for sample in self._samples:
            if now[0] - sample[0] <= 1.0:
                then = sample
                break
        dt = now[0] - then[0]
        if dt <= 0 or not self.running:
            return 0.0, 0.0
        return (now[1] - then[1]) / dt, (now[2] - then[2]) / dt

    def summary(self) -> Summary:
        """Header numbers now (call under `lock`): the reader's figures as of the tree's
        last commit, so the tree's root and the header always show the same data."""
        r = self.tree.figures
        header = self.reader.header or {}
        if self.live:
            end = self.ended if self.ended is not None else self.clock()
            elapsed = max(0.0, end - self.started)
        else:
            elapsed = r.last_time_us / 1e6
            trailer = self.reader.trailer
            start = header.get("start_time")
            if trailer and start:
                elapsed = max(elapsed, trailer["end_time"] - start)
        allocs, recs = self._rates()
        whole = self.tree.whole_counters()
        mark = self.tree.mark
        return Summary(
            pid=int(header.get("pid", 0)),
            command=" ".join(header.get("argv", [])) or "?",
            status=self.status_text(),
            elapsed_s=elapsed,
            heap_bytes=r.heap_bytes,
            peak_bytes=r.peak_bytes,
            peak_time_s=r.peak_time_us / 1e6,
            peak_by_s=getattr(r, "peak_by_us", r.peak_time_us) / 1e6,  # merged: at a tick
            allocs_per_s=allocs,
            records_per_s=recs,
            pending_symbols=self.tree.pending_names(),
            records=r.records,
            native=bool(header.get("native", False)),
            thread=(None if self.tree.thread is None else
                    tuple(self.tree.thread_totals().get(self.tree.thread,
                                                        (0,) * N_COUNTERS))),
            processes=(len(header["processes"]) if header.get("processes") else
                       1 + len(self.child_captures()) if self.child_prefix is not None else 0),
            untraced_children=int(getattr(self.reader, "untraced_children", 0) or 0),
            sample_bytes=sample_bytes(header),
            growth_per_s=self.tree.rate(whole[GROWTH_BYTES]),
            mark_time_s=None if mark is None else mark.t_us / 1e6,
            since_mark_bytes=whole[MARK_BYTES] if mark is not None else 0,
            cursor_s=None if self.tree.instant is None else self.tree.instant.t_us / 1e6,
            cursor_heap_bytes=0 if self.tree.instant is None else self.tree.instant.heap_bytes,
            reserved_bytes=r.reserved_bytes,
        )

    def child_captures(self) -> list[str]:
        """The captures the program's traced children are writing or wrote, by pid."""
        if self.child_prefix is None:
            return []
        from memtrace_core.tracer.children import child_captures

        return child_captures(self.child_prefix)

    def _compact_history(self) -> list[tuple[int, int, int]]:
        """The reader's TICK history, absorbed incrementally and kept to at most
        HISTORY_POINTS by merging neighbours (max), so a long run's chart costs the same."""
        hist = self.reader.history
        upto = min(len(hist), self.tree.figures.ticks)  # the data the tree holds
        if upto > self._hist_seen:
            self._points.extend(hist[self._hist_seen:upto])
            self._hist_seen = upto
            while len(self._points) > HISTORY_POINTS:
                pts = self._points
                merged = [(b[0], max(a[1], b[1]), max(a[2], b[2]))
                          for a, b in zip(pts[0::2], pts[1::2], strict=False)]
                if len(pts) % 2:
                    merged.append(pts[-1])
                self._points = merged
        return self._points

    def heap_series(self, width: int) -> tuple[list[int], list[int]]:
        """Heap and RSS over time in `width` buckets (max per bucket) for the chart; the
        peak is in it (it can fall between two ticks), so the chart's max is the
        header's peak."""
        hist = self._compact_history()
        if not hist or width <= 0:
            return [], []
        figures = self.tree.figures
        last = max(hist[-1][0], figures.peak_time_us) or 1
        heap = [0] * width
        rss = [0] * width
        filled = [False] * width
        for t_us, h, rs in hist:
            b = min(width - 1, t_us * width // (last + 1))
            filled[b] = True
            heap[b] = max(heap[b], h)
            rss[b] = max(rss[b], rs)
        if figures.peak_bytes:
            b = min(width - 1, figures.peak_time_us * width // (last + 1))
            filled[b] = True
            heap[b] = max(heap[b], figures.peak_bytes)
        for i in range(1, width):  # carry the level through gaps between ticks
            if not filled[i]:
                heap[i] = heap[i - 1]
                rss[i] = rss[i - 1]
        return heap, rss
