"""80x24, the size most terminals open at (issue 8): on a deep native stack the tree keeps
at least half the screen, and the selected frame's whole name and file:line are readable on
a line of their own while the detail pane is hidden; `d` swaps the two."""

from __future__ import annotations

from memtrace_core.model import CallTree, Session
from memtrace_core.reader import read_capture
from memtrace_tui.app import MemtraceApp
from tests.tui import scenarios


def deep_app(tmp_path) -> MemtraceApp:
    path = tmp_path / "deep.mtrace"
    names, modules = scenarios.write_deep_native(path)
    reader = read_capture(path)
    tree = CallTree(reader, scenarios.GivenNames(names, modules))
    tree.rebuild()
    return MemtraceApp(Session(reader, tree))



@scenarios.sync
async def test_deep_native_stack_at_80x24(tmp_path):
    app = deep_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("e")  # the hottest path: 40 native frames down
        await pilot.pause()
        main = app.main
        view = main.tree_view
        frame = view.selected.frame
        assert (frame.function, frame.file, frame.line) == ("deep::inline_step_39",
                                                            "src/walker.h", 49)
        assert view.selected.depth > 40
        assert view.page_height >= 24 // 2  # the tree keeps half the screen
        assert not main.detail.display and main.selection_line.display
        line = main.selection_line.render().plain
        assert line.startswith("[inl] deep::inline_step_39  src/walker.h:49")
        assert f"{frame.file}:{frame.line}" in line and "in use 3.0 MiB" in line
        # the row itself caps its indentation and shows the depth as a number
        row = "".join(text for text, _role in view.format_row(view.cursor))
        assert f"{view.selected.depth - 1:>4}›" in row and "inline_step_39" in row
        await pilot.press("up")  # the selection line follows the cursor
        await pilot.pause()
        assert main.selection_line.render().plain.startswith(
            f"{view.selected.frame.kind.mark} {view.selected.frame.function}")
        await pilot.press("d")  # the whole detail pane instead
        await pilot.pause()
        assert main.detail.display and not main.selection_line.display
        assert main.detail._shown[0] == view.selected.frame
        await pilot.press("d")
        await pilot.pause()
        assert not main.detail.display and main.selection_line.display


@scenarios.sync
async def test_tall_terminal_shows_the_detail_pane(tmp_path):
    app = deep_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("e")
        await pilot.pause()
        assert app.main.detail.display and not app.main.selection_line.display
