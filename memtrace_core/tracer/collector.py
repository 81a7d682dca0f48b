"""Python's garbage collector, left for the traced program where python would leave it.

The collector runs when its counters pass their thresholds (700 new objects for the young
generation, then every 10th collection of each generation for the next), so when a
program's collections come, and how many objects each one walks, depends on the counters
it starts with. `memtrace run` imports and sets up thousands of objects before the
program's first line; left alone, they moved the program's collections by half a cycle of
the middle generation (python starts a script at counters like (160, 4, 1), memtrace's
runs started at (491, 9, 1)), and on a program keeping tens of thousands of containers
(bench_run's pure-Python workload) its full collections came when its heap was larger:
2.5% more CPU, more than everything else sampled mode costs there, and a program's
memory profile (when its garbage cycles are freed) moved with it.

So the `memtrace` command pauses the collector before it imports anything of its own
(pause) and resumes it just before the program starts (resume): memtrace's young garbage
is collected then, and the program starts within one young-generation cycle of python's
counters. Pausing never outlives the setup: every path out of the command resumes.
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    """Stop automatic collections while memtrace sets itself up (not when the collector
    is already off)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Collect what memtrace's setup left in the young generation and turn automatic
    collections back on (once; nothing when pause() did nothing)."""
    global _paused
    if _paused:
        _paused = False
        gc.collect(0)
        gc.enable()
