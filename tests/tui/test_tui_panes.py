"""The detail pane, the selection line and the filter box are drawn over the views' bottom
lines (issue 18: `d` with 300 children open took 100-400 ms under churn, because showing the
pane resized the tree and Textual redrew every row). The views keep their size; the cursor
stays above the panes; rows' numbers are taken for the window and stay of one moment."""

from __future__ import annotations

import gc

import pytest

from memtrace_core.model import CallTree, Session
from memtrace_core.model.metrics import LIVE_BYTES
from memtrace_core.reader import StreamReader
from memtrace_tui.app import MemtraceApp
from memtrace_tui.collector import NO_FULL_PASSES
from tests.streamgen import ProgramStream
from tests.tui import scenarios

N_FUNCS = 300
MAIN = ("main", scenarios.APP, 17)


def wide_stream(extra: int = 0) -> ProgramStream:
    """main -> f0..f299, f_i holding 1000 + i bytes (+ `extra` each in a second part)."""
    w = ProgramStream()
    w.thread(1, 4242, "MainThread")
    w.tick(0)
    for i in range(N_FUNCS):
        w.alloc(0x10_0000 + 0x1000 * i, 1000 + i, [MAIN, (f"f{i}", scenarios.APP, 6)])
    return w


@pytest.fixture
def wide(tmp_path):
    path = tmp_path / "wide.mtrace"
    w = wide_stream()
    w.tick(100_000)
    w.trailer(0.1, 0)
    w.write(path)
    return path


def counting(view, name: str) -> list[int]:
    """Count calls of the view's method `name` (the real one still runs)."""
    calls = [0]
    real = getattr(view, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    setattr(view, name, counted)
    return calls


def cursor_on_screen(view) -> bool:
    return view.top <= view.cursor < view.top + view.page_height


@scenarios.sync
async def test_d_keeps_the_tree_size_and_redraws_only_what_changed(wide):
    app = MemtraceApp(scenarios.session_from(wide))
    async with app.run_test(size=(120, 40)) as pilot:
        main = app.main
        tree = main.tree_view
        await pilot.press("right")  # main open: 301 rows
        await pilot.pause()
        assert tree.row_count == N_FUNCS + 1 and main.detail.display
        size, shown_page = tree.size, tree.page_height
        formats, lines = counting(tree, "format_row"), counting(tree, "render_line")
        await pilot.press("d")  # hide: the 7 lines under the pane show rows
        await pilot.pause()
        assert not main.detail.display and main.selection_line.display
        assert tree.size == size and tree.page_height == shown_page + 7
        assert formats[0] == 7  # the rows uncovered, no other
        assert lines[0] < tree.page_height // 2, "every line was drawn again"
        formats[0] = lines[0] = 0
        await pilot.press("d")  # show: nothing to format, a few scrollbar glyphs to draw
        await pilot.pause()
        assert main.detail.display and tree.size == size and tree.page_height == shown_page
        assert formats[0] == 0 and lines[0] < tree.page_height // 2
        # what is on screen is what a full redraw paints
        await pilot.pause()
        painted = [tree.render_line(y).text for y in range(tree.size.height)]
        tree._strips.clear()
        tree._formatted.clear()
        assert painted == [tree.render_line(y).text for y in range(tree.size.height)]


@scenarios.sync
async def test_the_cursor_stays_above_the_panes(wide):
    app = MemtraceApp(scenarios.session_from(wide))
    async with app.run_test(size=(120, 40)) as pilot:
        main = app.main
        tree = main.tree_view
        await pilot.press("d", "right")  # pane hidden: the tree's window is one line short
        await pilot.pause()
        last = tree.page_height - 1
        tree.move_to(last)  # the last line above the selection line
        node = tree.selected
        await pilot.press("d")  # the pane covers that line now: the window follows
        await pilot.pause()
        assert tree.selected is node and cursor_on_screen(tree) and tree.top > 0
        region = main.detail.region
        y = tree.content_region.y + tree.cursor - tree.top
        assert y < region.y, "the cursor row is under the detail pane"
        await pilot.press("end", "slash")  # the filter box opens over the last line too
        await pilot.pause()
        assert main.filter_open and cursor_on_screen(tree)
        assert tree.content_region.y + tree.cursor - tree.top < main.filter_bar.region.y


@scenarios.sync
async def test_a_jump_after_a_commit_shows_rows_and_header_of_one_moment():
    """Rows' numbers are taken around the window; a jump past them while an update waits
    for its repaint rebuilds the rows with the header rather than show newer numbers."""
    w = wide_stream()
    start = len(w.data)
    w.tick(100_000)
    for i in range(N_FUNCS):  # every function grows by 5,000
        w.alloc(0x80_0000 + 0x2000 * i, 5000, [MAIN, (f"f{i}", scenarios.APP, 6)])
    data = w.data
    reader = StreamReader()
    reader.feed(data[:start])
    model = CallTree(reader)
    model.rebuild()
    session = Session(reader, model, live=True)
    app = MemtraceApp(session, tick_seconds=60.0)  # nothing repaints on its own
    async with app.run_test(size=(120, 40)) as pilot:
        main = app.main
        tree = main.tree_view
        await pilot.press("right")
        await pilot.pause()
        with session.lock:  # an update commits; its repaint has not come yet
            reader.feed(data[start:])
            model.update()
        await pilot.press("end")  # to rows whose numbers were not taken
        await pilot.pause()
        header = main.header_bar.summary.heap_bytes
        bottom = tree.numbers(tree.row_count - 1)[0][LIVE_BYTES]
        smallest = min(1000 + i for i in range(N_FUNCS))
        assert (header, bottom) in ((sum(1000 + i for i in range(N_FUNCS)), smallest),
                                    (model.root.total[LIVE_BYTES], smallest + 5000))
        assert header == model.root.total[LIVE_BYTES]  # rebuilt: the newer moment


@scenarios.sync
async def test_the_app_keeps_its_long_lived_objects_out_of_full_collections(wide):
    saved = gc.get_threshold()
    app = MemtraceApp(scenarios.session_from(wide))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[2] == NO_FULL_PASSES  # full passes when input is quiet
        before = app.collector.last_input
        await pilot.press("j")
        assert app.collector.last_input > before  # a key press puts the full pass off
    assert gc.get_freeze_count() == 0  # the process collects as usual after the app
    assert gc.get_threshold() == saved
