"""Pilot tests over capture files: keys drive the app, assertions read the tree state."""

from __future__ import annotations

import asyncio
import os

import pytest

from memtrace_core.model import CallTree, Session
from memtrace_core.model.metrics import LIVE_BYTES
from memtrace_core.reader import StreamReader
from memtrace_tui.app import MemtraceApp
from memtrace_tui.tree_view import CallTreeView
from tests.streamgen import ProgramStream
from tests.tui import scenarios
from tests.tui.pilot_support import PipeController, wait_for

SIZE = (120, 40)


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.mtrace"
    scenarios.write_sample(path)
    return path


def names(view: CallTreeView) -> list[str]:
    return [("  " * (n.depth - 1)) + n.frame.function for n in view.row_nodes]


@scenarios.sync
async def test_expand_collapse_and_hottest_path(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        tree = app.query_one("#tree", CallTreeView)
        assert names(tree) == ["main", "worker_loop"]
        await pilot.press("right")
        assert names(tree) == ["main", "  build_index", "  load_config", "  many_small",
                               "worker_loop"]
        await pilot.press("down", "down", "l")
        assert tree.selected.frame.function == "load_config"
        assert names(tree)[3] == "    parse_rows"
        await pilot.press("h")
        assert names(tree)[:4] == ["main", "  build_index", "  load_config", "  many_small"]
        await pilot.press("h")  # on a closed child: go to the parent, which stays open
        assert tree.selected.frame.function == "main" and len(names(tree)) == 5
        await pilot.press("h")  # on an open node: collapse it
        assert names(tree) == ["main", "worker_loop"]
        await pilot.press("j", "e")
        assert tree.selected.frame.function == "parse_rows"
        assert tree.selected.total[LIVE_BYTES] == 2000
        await pilot.press("c")
        assert names(tree) == ["main", "worker_loop"]
        assert tree.selected.frame.function == "worker_loop"


@scenarios.sync
async def test_metric_switch_reorders_children(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        tree = app.query_one("#tree", CallTreeView)
        await pilot.press("right")
        assert names(tree)[1:3] == ["  build_index", "  load_config"]
        await pilot.press("m", "m", "m")  # in use -> peak -> total -> allocations
        assert app.session.tree.metric.value == "allocations"
        assert names(tree)[1:4] == ["  many_small", "  build_index", "  load_config"]
        assert tree.selected.frame.function == "main"  # selection stayed on its node
        columns = str(app.query_one("#columns").render())
        assert "allocations" in columns and columns.lstrip().startswith("count↓")


@scenarios.sync
async def test_filter_and_thread_selection(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        tree = app.query_one("#tree", CallTreeView)
        await pilot.press("slash", *"parse", "enter")
        assert app.session.tree.root.total[LIVE_BYTES] == 32_000
        await pilot.press("e")
        assert names(tree) == ["main", "  load_config", "    parse_rows", "worker_loop"]
        await pilot.press("slash", "ctrl+u", "enter")  # empty filter clears
        assert app.session.tree.root.total[LIVE_BYTES] == scenarios.IN_USE
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("down", "down", "enter")  # all, worker-1 (largest first? no: main)
        await pilot.pause()
        thread = app.session.tree.thread
        expected = {1: scenarios.IN_USE - 72_000, 2: 72_000}[thread]
        assert app.session.tree.root.total[LIVE_BYTES] == expected
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("home", "enter")
        await pilot.pause()
        assert app.session.tree.thread is None


@scenarios.sync
async def test_thread_numbers_are_the_threads_own(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE):
        with app.session.lock:
            app.session.tree.set_thread(2)
        app.refresh_all()
        tree = app.query_one("#tree", CallTreeView)
        assert names(tree) == ["worker_loop"]
        assert tree.row_nodes[0].total[LIVE_BYTES] == 72_000


@scenarios.sync
async def test_detail_pane_shows_source_and_exact_bytes(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("right", "down")
        text = str(app.query_one("#detail").render())
        assert "build_index" in text and f"{scenarios.APP}:13" in text
        assert "def build_index(rows):" in text
        assert "120000 B" in text and "[py] Python" in text
        await pilot.press("d")
        assert not app.query_one("#detail").display
        await pilot.press("d")
        assert app.query_one("#detail").display


@scenarios.sync
async def test_table_view_sorts(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v")
        table = app.query_one("#table")
        assert [loc.frame.function for loc in table.row_locations][:2] == [
            "build_index", "worker_loop"]
        await pilot.press("s")  # total
        assert table.row_locations[0].frame.function == "main"
        await pilot.press("s")  # count
        assert table.row_locations[0].frame.function == "many_small"
        await pilot.press("v")
        assert app.query_one("#views").current == "tree"


@scenarios.sync
async def test_live_updates_keep_selection_and_expansion_and_pause():
    stack_a = [("main", "a.py", 1), ("alpha", "a.py", 5)]
    stack_b = [("main", "a.py", 1), ("beta", "a.py", 9)]
    w = ProgramStream()
    w.alloc(1, 1000, stack_a)
    w.alloc(2, 500, stack_b)
    part1 = w.take()
    w.alloc(3, 5000, stack_b)  # beta overtakes alpha: rows reorder
    part2 = w.take()
    w.alloc(4, 7, stack_a)
    part3 = w.data

    reader = StreamReader()
    session = Session(reader, CallTree(reader), live=True)
    r, wfd = os.pipe()
    controller = PipeController(r, session)
    app = MemtraceApp(session, controller)
    async with app.run_test(size=SIZE) as pilot:
        os.write(wfd, part1)
        tree = app.query_one("#tree", CallTreeView)
        await wait_for(lambda: len(tree.row_nodes) == 1)
        await pilot.press("right", "down")
        assert names(tree) == ["main", "  alpha", "  beta"]
        alpha = tree.selected
        assert alpha.frame.function == "alpha"
        os.write(wfd, part2)
        await wait_for(lambda: names(tree) == ["main", "  beta", "  alpha"])
        assert tree.selected is alpha and tree.cursor == 2  # cursor followed the node
        await pilot.press("p")
        before = reader.records
        os.write(wfd, part3)
        await wait_for(lambda: reader.records > before)
        await asyncio.sleep(0.1)
        await pilot.pause()
        assert alpha.total[LIVE_BYTES] == 1000  # view paused: model not updated
        assert "PAUSED" in str(app.query_one("#columns").render())
        await pilot.press("p")
        await wait_for(lambda: alpha.total[LIVE_BYTES] == 1007)
        assert tree.selected is alpha and 0 in {n.depth - 1 for n in tree.row_nodes}
        os.close(wfd)
        await wait_for(lambda: controller.feed.eof.is_set())


@scenarios.sync
async def test_help_log_and_quit_in_view_mode(sample, tmp_path):
    log = tmp_path / "prog.log"
    log.write_text("hello from the program\n")

    class ViewWithLog:  # a controller-less session has no log; this one just names a file
        log_path = str(log)

    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        help_text = str(app.screen.query_one("Static").render())
        for key in ("j k", "enter", "collapse all", "filter", "metric", "thread", "interpreter",
                    "table", "pause", "detail", "quit"):
            assert key in help_text
        await pilot.press("escape")
        assert type(app.screen).__name__ == "MainScreen"
        app.controller = ViewWithLog()  # type: ignore[assignment]
        await pilot.press("L")
        await pilot.pause()
        assert type(app.screen).__name__ == "LogScreen"
        assert "hello from the program" in "\n".join(app.screen.query_one("Log").lines)
        await pilot.press("escape")
        app.controller = None
        await pilot.press("q")  # nothing running: quits at once
    assert app.return_value == 0


@scenarios.sync
async def test_thread_picker_lists_threads_by_bytes(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        await pilot.pause()
        options = app.screen.query_one("OptionList")
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert labels[0] == "all threads (merged)"
        assert labels[1].startswith("#1 MainThread (tid 4242)")
        assert labels[2].startswith("#2 worker-1 (tid 4250)") and "70.3 KiB" in labels[2]
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert app.session.tree.thread == 2
        assert app.session.tree.root.total[LIVE_BYTES] == 72_000
        assert "thread #2 worker-1" in str(app.query_one("#columns").render())
        header = str(app.query_one("#header").render())
        assert "heap 221.6 KiB  thread 70.3 KiB  peak" in header  # the root's own figure
        await pilot.press("t", "escape")  # cancel keeps the choice
        await pilot.pause()
        assert app.session.tree.thread == 2


@scenarios.sync
async def test_internal_frames_toggle(tmp_path):
    w = ProgramStream()
    boot = ("_call_with_frames_removed", "<frozen importlib._bootstrap>", 241)
    w.alloc(1, 64, [("main", "a.py", 1), boot, ("load", "b.py", 2)])
    w.write(tmp_path / "c.mtrace")
    app = MemtraceApp(scenarios.session_from(tmp_path / "c.mtrace"))
    async with app.run_test(size=SIZE) as pilot:
        tree = app.query_one("#tree", CallTreeView)
        await pilot.press("e")
        assert names(tree) == ["main", "  load"]
        await pilot.press("i", "home", "e")
        assert names(tree) == ["main", "  _call_with_frames_removed", "    load"]


@scenarios.sync
async def test_mouse_selects_then_toggles(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        tree = app.query_one("#tree", CallTreeView)
        await pilot.click("#tree", offset=(20, 1))  # second row: worker_loop
        assert tree.selected.frame.function == "worker_loop"
        await pilot.click("#tree", offset=(20, 1))  # again: expands it
        assert names(tree) == ["main", "worker_loop", "  parse_rows"]
        await pilot.click("#tree", offset=(20, 1))
        assert names(tree) == ["main", "worker_loop"]


@scenarios.sync
async def test_toggles_set_from_code_act_like_their_keys(sample, tmp_path):
    """The screens' toggles are reactive: setting one (from a command, an embedding app)
    repaints what its key would, without a key press."""
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main

        def badges() -> list[str]:
            return [text for text, _style in main.columns.badges]

        main.paused = True
        assert app.paused and "PAUSED" in badges()
        main.paused = False
        assert not app.paused and "PAUSED" not in badges()
        main.detail_shown = False
        assert not main.detail.display and main.selection_line.display
        main.detail_shown = True
        assert main.detail.display and not main.selection_line.display
        covered = main.tree_view.occluded
        main.filter_open = True  # over the views' bottom line, which the tree gives up
        assert main.filter_bar.display and main.tree_view.occluded == covered + 1
        main.filter_open = False
        assert not main.filter_bar.display and main.tree_view.occluded == covered
        await pilot.press("v")
        table = main.table_view
        table.sort = "count"
        assert table.row_locations[0].frame.function == "many_small"
        assert "count↓" in main.columns.titles
        table.sort = "own"
        assert table.row_locations[0].frame.function == "build_index"
        log = tmp_path / "out.log"
        log.write_text("hello\n")
        from memtrace_tui.log_screen import LogScreen

        screen = LogScreen(str(log))
        await app.push_screen(screen)
        screen.following = False
        assert "not following" in str(screen.query_one("#log-title").render())
        screen.following = True
        assert "not following" not in str(screen.query_one("#log-title").render())
