"""Leak-hunting keys on a live session fed through a pipe: `b` marks (the tree then shows
exactly what changed since), `B` clears, `m` reaches growth and temporary and skips the
since-mark metric until there is a mark; the header shows the mark and the change."""

from __future__ import annotations

import os

from memtrace_core.model import CallTree, Metric, Session
from memtrace_core.model.metrics import MARK_BYTES, MARK_COUNT
from memtrace_core.reader import StreamReader
from memtrace_tui.app import MemtraceApp
from tests.streamgen import ProgramStream
from tests.tui import scenarios
from tests.tui.pilot_support import PipeController, until, wait_for

WARM = [("main", "svc.py", 1), ("warm_up", "svc.py", 5)]
LEAK = [("main", "svc.py", 1), ("handle", "svc.py", 9)]


@scenarios.sync
async def test_mark_shows_exactly_what_leaked_after_it():

    w = ProgramStream()
    for i in range(4):
        w.alloc(0x1000 + 0x100 * i, 25_000, WARM)  # the warm-up keeps 100,000 B
    w.tick(1_000_000)
    warm = w.take()
    for i in range(6):
        w.alloc(0x9000 + 0x100 * i, 4096, LEAK)  # 6 leaks after the mark
    w.free(0x1000)  # the warm-up gives one block back
    w.tick(2_000_000)
    later = w.data
    reader = StreamReader()
    session = Session(reader, CallTree(reader), live=True)
    r, wfd = os.pipe()
    controller = PipeController(r, session)
    app = MemtraceApp(session, controller)
    async with app.run_test(size=(100, 30)) as pilot:
        tree = session.tree
        os.write(wfd, warm)
        await wait_for(lambda: tree.figures.heap_bytes == 100_000)
        cycle = []
        for _ in range(len(Metric) - 2):  # no mark yet: "since mark" is skipped (and the
            # timeline's own metric is never in the cycle)
            await pilot.press("m")
            cycle.append(tree.metric)
        assert Metric.SINCE_MARK not in cycle and cycle[-1] is Metric.IN_USE
        assert Metric.GROWTH in cycle and Metric.TEMPORARY in cycle
        await pilot.press("b")
        assert tree.metric is Metric.SINCE_MARK and tree.mark.heap_bytes == 100_000
        await pilot.pause(0.2)
        header = str(app.main.header_bar.render())
        assert "mark 1.0s ±0 B" in header, header
        assert app.main.tree_view.row_nodes == []  # nothing changed since the mark
        os.write(wfd, later)
        await wait_for(lambda: tree.figures.heap_bytes == 100_000 + 6 * 4096 - 25_000)

        def shown() -> dict:
            return {n.frame.function: (n.total[MARK_BYTES], n.total[MARK_COUNT])
                    for n in app.main.tree_view.row_nodes}

        # the view redraws on its own clock: under load that can take longer than a pause
        await until(pilot, lambda: shown() == {"main": (6 * 4096 - 25_000, 5)})
        await pilot.press("e")
        rows = {n.frame.function: (n.total[MARK_BYTES], n.total[MARK_COUNT])
                for n in app.main.tree_view.row_nodes}
        assert rows == {"main": (6 * 4096 - 25_000, 5), "handle": (6 * 4096, 6),
                        "warm_up": (-25_000, -1)}
        functions = [n.frame.function for n in app.main.tree_view.row_nodes]
        assert functions == ["main", "handle", "warm_up"]  # growth first, shrink last
        text = app.main.tree_view.format_row(1)
        assert "+24.0 KiB" in "".join(t for t, _ in text), text
        header = str(app.main.header_bar.render())
        assert f"mark 1.0s -{(25_000 - 6 * 4096)} B" in header, header
        await pilot.press("B")
        assert tree.mark is None and tree.metric is Metric.IN_USE
        header = str(app.main.header_bar.render())
        assert "mark" not in header
        os.close(wfd)
        await wait_for(lambda: controller.feed.eof.is_set())


@scenarios.sync
async def test_live_timeline_moves_between_phases_while_the_program_runs():

    from memtrace_core.model.metrics import AT_BYTES

    reader = StreamReader()
    tree = CallTree(reader)
    tree.record_timeline()
    session = Session(reader, tree, live=True)
    r, wfd = os.pipe()
    controller = PipeController(r, session)
    app = MemtraceApp(session, controller)
    w = ProgramStream()
    async with app.run_test(size=(100, 30)) as pilot:
        w.alloc(0x1000, 30_000, WARM)  # phase one: 30,000 B in warm_up
        w.tick(1_000_000)
        os.write(wfd, w.take())
        await wait_for(lambda: tree.figures.heap_bytes == 30_000)
        await pilot.pause(0.3)
        w.alloc(0x9000, 4096, LEAK)  # phase two: warm_up freed, 4,096 B in handle
        w.free(0x1000)
        w.tick(2_000_000)
        os.write(wfd, w.data)
        await wait_for(lambda: tree.figures.heap_bytes == 4096)
        await until(pilot, lambda: len(tree.timeline.points) >= 2)
        await pilot.press("left_curly_bracket")  # the first instant: phase one
        assert tree.metric is Metric.AT_CURSOR
        rows = {n.frame.function: n.total[AT_BYTES] for n in tree.walk() if n.frame
                and n.total[AT_BYTES]}
        assert rows == {"main": 30_000, "warm_up": 30_000}, rows
        assert "at 1.00s" in str(app.main.header_bar.render())
        await pilot.press("right_curly_bracket")  # now
        assert tree.instant is None and tree.metric is Metric.IN_USE
        os.close(wfd)
        await wait_for(lambda: controller.feed.eof.is_set())
