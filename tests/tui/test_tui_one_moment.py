"""Header, rows and detail pane show one moment of the model (issue 8: the tree's numbers
are the header's numbers). A model update can commit between two repaints (the repaint
waits for the next tick); rows painted meanwhile keep the numbers of the last repaint, and
a key that rebuilds the rows (c, e, enter...) brings the header to the same moment."""

from __future__ import annotations

from memtrace_core.model import CallTree, Session, format_bytes
from memtrace_core.model.metrics import LIVE_BYTES
from memtrace_core.reader import StreamReader
from memtrace_tui.app import MemtraceApp
from tests.streamgen import ProgramStream
from tests.tui import scenarios

MAIN = ("main", "app.py", 3)
LOAD = ("load", "app.py", 7)
GROW = ("grow", "app.py", 11)


def first_part(w: ProgramStream) -> None:
    w.thread(1, 4242, "MainThread")
    w.tick(0)
    w.alloc(0x1000, 10_000, [MAIN, LOAD])
    w.alloc(0x2000, 20_000, [MAIN, GROW])


def second_part(w: ProgramStream) -> None:
    w.tick(100_000)
    w.alloc(0x3000, 3_000_000, [MAIN, GROW])
    w.alloc(0x4000, 400_000, [("other", "app.py", 20)])
    w.free(0x1000)


def shown(app: MemtraceApp) -> tuple[int, list[str], list[int]]:
    """(header heap, the in-use figure painted on each top-level row, the detail pane's
    numbers of the selected frame: total in use)."""
    main = app.main
    view = main.tree_view
    top = [" ".join(view.format_row(i)[0][0].split()[:2]) for i in range(view.row_count)
           if view.row_nodes[i].depth == 1]
    return main.header_bar.summary.heap_bytes, top, list(main.detail._shown[2])


@scenarios.sync
async def test_rows_and_header_stay_together_across_a_commit_and_a_key():
    w = ProgramStream()
    first_part(w)
    start = len(w.data)
    second_part(w)
    data = w.data
    reader = StreamReader()
    reader.feed(data[:start])
    tree = CallTree(reader)
    tree.rebuild()
    session = Session(reader, tree, live=True)
    # ticks far apart: nothing repaints on its own during the test
    app = MemtraceApp(session, tick_seconds=60.0)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        view = app.main.tree_view
        heap, rows, _ = shown(app)
        assert heap == 30_000 and rows == [format_bytes(30_000)]
        # an update commits; its repaint has not come yet
        with session.lock:
            reader.feed(data[start:])
            tree.update()
        assert tree.root.total[LIVE_BYTES] == 3_420_000
        view.refresh()  # rows painted again (scrolling, a resize, the cursor...)
        await pilot.pause()
        heap, rows, _ = shown(app)
        assert heap == 30_000 and rows == [format_bytes(30_000)], "rows ran ahead"
        await pilot.press("down")  # the detail pane: the row as shown, not the newer node
        await pilot.pause()
        assert view.selected.frame.function == "main"
        assert shown(app)[2][LIVE_BYTES] == 30_000
        await pilot.press("c")  # rebuilt by a key: the header comes along
        await pilot.pause()
        heap, rows, detail = shown(app)
        assert heap == 3_420_000 and rows == [format_bytes(3_020_000), format_bytes(400_000)]
        assert detail[LIVE_BYTES] == view.selected.total[LIVE_BYTES]
        await pilot.press("e")
        await pilot.pause()
        assert shown(app)[0] == 3_420_000
