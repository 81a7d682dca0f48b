"""The timeline stored as changes (model/timeline.py, model/_snapshots.pyx): every instant
gives exactly the state of the capture at its TICK (checked against a reader fed up to
that TICK), through keyframes, change sets and thinning; the live path (whole snapshots,
diffed) keeps the same instants as the capture path (the reader's changed list)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from memtrace_core.model import _snapshots
from memtrace_core.model import timeline as timeline_mod
from memtrace_core.model.timeline import Timeline, read_with_timeline
from memtrace_core.reader import StreamReader, new_reader, read_capture, read_capture_at, replay
from tests.streamgen import compress, sample_stream

DATA = sample_stream(seed=5, n=8000).data


def _pairs(*values: int) -> bytes:
    return struct.pack(f"{len(values)}q", *values)


def test_change_sets_diff_apply_and_merge_exactly() -> None:
    old = _pairs(10, 1, 0, 0, 7, 2)
    new = _pairs(10, 1, 5, 1, 0, 0, 99, 3)  # stack 1 and 2 changed, stack 3 is new
    changes = _snapshots.diff(old, new)
    assert struct.unpack(f"{len(changes) // 8}q", changes) == (1, 5, 1, 2, 0, 0, 3, 99, 3)
    state = bytearray(old) + bytearray(16)
    _snapshots.apply(state, changes)
    assert bytes(state) == new
    merged = _snapshots.merge(_snapshots.diff(old, _pairs(10, 1, 4, 4, 7, 2)), changes)
    assert struct.unpack(f"{len(merged) // 8}q", merged) == (1, 5, 1, 2, 0, 0, 3, 99, 3)
    assert _snapshots.merge(_pairs(0, 1, 1), b"") == _pairs(0, 1, 1)
    assert _snapshots.diff(new, new) == b""
    with pytest.raises(IndexError):
        _snapshots.apply(bytearray(16), _pairs(4, 1, 1))


def _capture(tmp_path: Path) -> Path:
    path = tmp_path / "s.mtrace"
    path.write_bytes(compress(DATA, flush_every=1500))
    return path


def _exact(path: Path, timeline: Timeline) -> None:
    """Every instant is the capture at its TICK: a reader fed up to there says so (the
    last one is the capture's end, records after its last TICK included)."""
    for point in timeline.points[:-1]:
        then = read_capture_at(path, point.t_us)
        assert then.last_time_us == point.t_us
        assert (point.heap_bytes, point.heap_allocations) == (then.heap_bytes,
                                                              then.heap_allocations)
        assert point.snapshot == then.live_snapshot()
        assert point.n_stacks == then.n_stacks


@pytest.mark.parametrize("max_points", [512, 12])
def test_every_instant_is_exact_through_change_sets_and_thinning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_points: int) -> None:
    monkeypatch.setattr(timeline_mod, "MAX_POINTS", max_points)
    path = _capture(tmp_path)
    reader, timeline = read_with_timeline(path)
    points = timeline.points
    assert 2 <= len(points) <= max_points
    times = [p.t_us for p in points]
    assert times == sorted(times) and len(set(times[:-1])) == len(times) - 1
    stored = [p._full is not None for p in points]
    assert any(stored) and not all(stored)  # keyframes and change sets both in use
    if max_points == 12:
        assert timeline.step_us > timeline_mod.FIRST_STEP_US  # thinned, maybe many times
    _exact(path, timeline)
    whole = read_capture(path)
    assert points[-1].snapshot == whole.live_snapshot()
    assert points[-1].t_us == whole.last_time_us
    assert timeline.peak.snapshot == whole.peak_snapshot()
    assert timeline.stored_bytes() == sum(p.stored_bytes() for p in points)
    assert timeline.stored_bytes() < sum(len(p.snapshot) for p in points)
    # instants read in any order, again and again, give the same bytes
    backwards = [p.snapshot for p in reversed(points)]
    assert backwards[::-1] == [p.snapshot for p in points]


def test_the_live_path_keeps_the_same_instants(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """add() (a whole snapshot, diffed: `live`, where the tree takes the changed list) and
    take() (the reader's changed list: a capture read at once) keep equal instants."""
    monkeypatch.setattr(timeline_mod, "MAX_POINTS", 20)
    path = _capture(tmp_path)
    timelines = []
    for keep in ("add", "take"):
        reader = new_reader(1)
        timeline = Timeline()

        def at_stop(stopped, timeline=timeline, keep=keep) -> int:
            getattr(timeline, keep)(stopped)
            return timeline.next_stop()

        reader.stop_at(0)
        replay(path, reader, at_stop)
        timelines.append(timeline)
    added, taken = timelines
    assert len(added.points) == len(taken.points) > 2
    assert added.points == taken.points
    _exact(path, added)


def test_an_instant_shown_then_dropped_keeps_its_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The UI holds the instant at its cursor while `live`'s timeline thins: it stays exact;
    an instant nobody read is dropped for good."""
    monkeypatch.setattr(timeline_mod, "MAX_POINTS", 10)
    path = _capture(tmp_path)
    reader = StreamReader()
    timeline = Timeline()
    held = unread = None

    def at_stop(stopped) -> int:
        nonlocal held, unread
        timeline.take(stopped)
        if len(timeline.points) == 6 and held is None:
            held, unread = timeline.points[3], timeline.points[5]
            assert held.snapshot  # shown: the UI read it
        return timeline.next_stop()

    reader.stop_at(0)
    replay(path, reader, at_stop)
    assert held is not None and held not in timeline.points and unread not in timeline.points
    assert held.snapshot == read_capture_at(path, held.t_us).live_snapshot()
    with pytest.raises(LookupError):
        unread.snapshot  # noqa: B018


def test_memory_stays_within_the_budget(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timeline_mod, "BUDGET", 4096)
    path = _capture(tmp_path)
    _reader, timeline = read_with_timeline(path)
    assert timeline.stored_bytes() <= 4096 or len(timeline.points) <= 2
    _exact(path, timeline)
