"""The UI's pacing of Python's cycle collector (memtrace_tui/collector.py): no automatic
full pass while the app runs, one when input has been quiet (or after MAX_SECONDS whatever
happens), and garbage in reference cycles among old objects is still collected."""

from __future__ import annotations

import gc
import weakref

import pytest

from memtrace_tui import collector
from memtrace_tui.collector import CollectorPacing


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Cyclic:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def pacing():
    saved = gc.get_threshold()
    clock = Clock()
    pacing = CollectorPacing(clock)
    pacing.start()
    try:
        yield pacing, clock
    finally:
        pacing.stop()
        gc.set_threshold(*saved)


def _old_cyclic_garbage() -> weakref.ref:
    """A reference cycle that survived into the oldest generation, then became garbage:
    only a full pass frees it."""
    obj = Cyclic()
    ref = weakref.ref(obj)
    gc.collect(1)  # it survives the young passes: now in the oldest generation
    del obj
    return ref


def test_start_freezes_what_exists_and_turns_automatic_full_passes_off(pacing) -> None:
    pacing_, _clock = pacing
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[2] == collector.NO_FULL_PASSES
    ref = _old_cyclic_garbage()
    gc.collect(1)  # the young passes, as automatic ones run
    assert ref() is not None  # waits for a full pass
    assert pacing_.full_passes == 0


def test_a_full_pass_waits_for_quiet_input_then_collects_old_cycles(pacing) -> None:
    pacing_, clock = pacing
    ref = _old_cyclic_garbage()
    clock.now += collector.MIN_SECONDS  # due by time, but a key just came
    pacing_.input()
    assert not pacing_.maybe_collect()
    clock.now += collector.QUIET_SECONDS / 2
    assert not pacing_.maybe_collect()
    assert ref() is not None
    clock.now += collector.QUIET_SECONDS / 2  # quiet long enough
    assert pacing_.maybe_collect()
    assert ref() is None
    assert pacing_.full_passes == 1 and len(pacing_.full_seconds) == 1
    assert not pacing_.maybe_collect()  # not again before MIN_SECONDS


def test_never_quiet_still_collects_after_max_seconds(pacing) -> None:
    pacing_, clock = pacing
    ref = _old_cyclic_garbage()
    start = clock.now
    while clock.now - start < collector.MAX_SECONDS - 0.5:
        clock.now += 0.5
        pacing_.input()  # a key every half second
        assert not pacing_.maybe_collect()
    clock.now += 0.5
    pacing_.input()
    assert pacing_.maybe_collect()
    assert ref() is None


def test_stop_restores_the_collector() -> None:
    saved = gc.get_threshold()
    pacing = CollectorPacing()
    pacing.start()
    pacing.start()  # twice: one start
    pacing.stop()
    assert gc.get_threshold() == saved
    assert gc.get_freeze_count() == 0
    pacing.stop()  # twice: nothing more
    assert gc.get_threshold() == saved
