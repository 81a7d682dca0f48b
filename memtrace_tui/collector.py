"""When Python's cycle collector runs while the UI is up: never in the middle of a burst of
key presses. A full pass over the objects made since start-up held the UI thread for
10-40 ms (50-180 ms before the start-up objects were frozen), and one landing on a key
press made that key's repaint late (issue 18: `d` p99 over 100 ms in one run of six).

What exists at start-up lives as long as the app: frozen out of every pass. The automatic
full passes are off; the app runs one itself once input has been quiet for a moment, or
after MAX_SECONDS whatever happens, so garbage in reference cycles is still collected (a
profiler's UI must not grow). The young generations are collected as usual: their passes
are short (they only look at recent objects).
"""

from __future__ import annotations

import gc
import time

QUIET_SECONDS = 1.0  # no key or mouse input for this long: a full pass may run
MIN_SECONDS = 5.0  # at most one full pass this often
MAX_SECONDS = 60.0  # at least one full pass this often, even while keys keep coming
NO_FULL_PASSES = 1 << 30  # gen-1 passes before an automatic full one: never


class CollectorPacing:
    """start() at mount, input() on every key or mouse event, maybe_collect() from a
    timer, stop() at unmount (the process goes on: tests, embedding)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._saved: tuple[int, int, int] | None = None
        self.last_input = 0.0
        self.last_full = 0.0
        self.full_passes = 0  # run by this pacing (benchmarks, tests)
        self.full_seconds: list[float] = []  # their durations, a bounded window

    @property
    def active(self) -> bool:
        return self._saved is not None

    def start(self) -> None:
        if self._saved is not None:
            return
        gc.freeze()
        self._saved = gc.get_threshold()
        young, middle, _full = self._saved
        gc.set_threshold(young, middle, NO_FULL_PASSES)
        self.last_input = self.last_full = self._clock()

    def input(self) -> None:
        self.last_input = self._clock()

    def due(self) -> bool:
        """A full pass would run now."""
        now = self._clock()
        since = now - self.last_full
        return self.active and (since >= MAX_SECONDS or (
            since >= MIN_SECONDS and now - self.last_input >= QUIET_SECONDS))

    def maybe_collect(self) -> bool:
        """One full pass if due; True when it ran."""
        if not self.due():
            return False
        t0 = time.perf_counter()
        gc.collect()
        self.full_seconds.append(time.perf_counter() - t0)
        del self.full_seconds[:-256]
        self.full_passes += 1
        self.last_full = self._clock()
        return True

    def stop(self) -> None:
        if self._saved is None:
            return
        gc.set_threshold(*self._saved)
        self._saved = None
        gc.unfreeze()
