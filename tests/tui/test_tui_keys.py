"""Pilot tests for the keys of issue 18: fast typing after `/`, the live filter, n/N and
Escape, state kept across `/`, `i`, `t`, `v`, `m`, quitting from every path, screens that
own their keys, and a cursor that is always on screen (keys, wheel, updates)."""

from __future__ import annotations

import asyncio
import os

import pytest
from textual import events
from textual.command import CommandList, CommandPalette

from memtrace_core.model import CallTree, Metric, Session
from memtrace_core.model.metrics import LIVE_BYTES
from memtrace_core.reader import StreamReader
from memtrace_tui.app import MemtraceApp
from memtrace_tui.tree_view import CallTreeView
from tests.streamgen import ProgramStream
from tests.tui import scenarios
from tests.tui.pilot_support import PipeController, until, wait_for

SIZE = (100, 30)


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.mtrace"
    scenarios.write_sample(path)
    return path


@pytest.fixture
def big(tmp_path):
    path = tmp_path / "big.mtrace"
    scenarios.write_big(path)
    return path


def functions(view: CallTreeView) -> list[str]:
    return [("  " * (n.depth - 1)) + n.frame.function for n in view.row_nodes]


def path_of(node) -> list[str]:
    return [n.frame.function for n in node.path()]


def type_fast(app: MemtraceApp, *keys: str) -> None:
    """Keys as a fast typist sends them: all queued before the app handles the first."""
    for key in keys:
        char = {"slash": "/", "space": " "}.get(key, key if len(key) == 1 else None)
        app._driver.send_message(events.Key(key, char))


def cursor_on_screen(view) -> bool:
    """The cursor row is inside the painted window of the view."""
    return view.top <= view.cursor < view.top + view.page_height


# -- filter ---------------------------------------------------------------------------------
@scenarios.sync
async def test_keys_typed_right_after_slash_go_to_the_filter(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        detail_shown = main.detail.display
        # every letter of "load" is also a main-screen key (l expands, d toggles the detail)
        type_fast(app, "slash", "l", "o", "a", "d")
        await until(pilot, lambda: app.session.tree.filter == "load")  # live: no Enter
        assert main.filter_box.value == "load"
        assert main.detail.display == detail_shown
        assert main.tree_view.expanded == {}  # `l` did not expand anything
        assert type(app.screen).__name__ == "MainScreen"
        assert app.session.tree.root.total[LIVE_BYTES] == 4096 + 30_000
        type_fast(app, "i", "t", "m")  # more letters that are keys elsewhere
        await until(pilot, lambda: main.filter_box.value == "loaditm")
        assert not app.session.tree.show_internal and app.session.tree.thread is None
        assert app.session.tree.metric.value == "in use"


@scenarios.sync
async def test_keys_typed_right_after_v_go_to_the_new_view(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        type_fast(app, "v", "s")  # the table's own key, at once
        await until(pilot, lambda: app.main.table_view.sort == "total")
        type_fast(app, "v", "e")  # back in the tree: `e` expands the hottest path
        await until(pilot, lambda: app.main.tree_view.expanded != {})
        assert app.screen.focused is app.main.tree_view


@scenarios.sync
async def test_filter_is_live_highlights_and_escape_clears(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        tree = app.main.tree_view
        await pilot.press("slash", "p", "a", "r")
        await until(pilot, lambda: app.session.tree.filter == "par")
        assert app.session.tree.root.total[LIVE_BYTES] == 32_000
        await pilot.press("s", "e", "enter")
        assert app.session.tree.filter == "parse"
        assert not app.main.filter_open and app.screen.focused is tree
        assert path_of(tree.selected) == ["main"]  # the cursor stayed on its node
        await pilot.press("n")  # the first match: parse_rows under main → load_config
        assert path_of(tree.selected) == ["main", "load_config", "parse_rows"]
        row = tree.row(tree.cursor)
        marked = [text for text, roles in row if "match" in roles.split()]
        assert marked == ["parse"]  # the name's matching part, highlighted
        assert "/parse" in str(app.query_one("#columns").render())
        await pilot.press("escape")
        assert app.session.tree.filter == ""
        assert app.session.tree.root.total[LIVE_BYTES] == scenarios.IN_USE
        assert path_of(tree.selected) == ["main", "load_config", "parse_rows"]
        assert "/parse" not in str(app.query_one("#columns").render())


@scenarios.sync
async def test_an_empty_view_says_why(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash", *"zzq")
        await until(pilot, lambda: app.session.tree.filter == "zzq")
        for view in ("tree", "table"):
            shown = app.main.active_view
            assert shown.row_count == 0
            assert shown.render_line(0).text.strip() == \
                'no frame matches "zzq" (escape clears the filter)', view
            await pilot.press("enter", "v", "slash")
        await pilot.press("escape")
        assert app.main.active_view.row_count > 0
        assert "no frame matches" not in app.main.active_view.render_line(0).text
    reader = StreamReader()  # live, before the program's first allocation
    app = MemtraceApp(Session(reader, CallTree(reader)))
    async with app.run_test(size=SIZE) as pilot:
        assert app.main.tree_view.render_line(0).text.strip() == "nothing in use yet"
        app.set_metric(Metric.TEMPORARY)
        await pilot.pause()
        assert app.main.tree_view.render_line(0).text.strip() == "no temporary allocations yet"


@scenarios.sync
async def test_n_and_N_jump_between_matches(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        tree = app.main.tree_view
        await pilot.press("slash", *"parse", "enter", "n")
        first = path_of(tree.selected)
        assert first == ["main", "load_config", "parse_rows"]
        await pilot.press("n")  # the other parse_rows: thread 2's, under worker_loop
        assert path_of(tree.selected) == ["worker_loop", "parse_rows"]
        assert tree.selected in tree.row_nodes and cursor_on_screen(tree)
        await pilot.press("n")  # wraps around
        assert path_of(tree.selected) == first
        await pilot.press("N")
        assert path_of(tree.selected) == ["worker_loop", "parse_rows"]


@scenarios.sync
async def test_slash_inside_the_filter_is_text(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash", *"tui", "slash", *"sample")
        await until(pilot, lambda: app.session.tree.filter == "tui/sample")
        assert app.session.tree.root.total[LIVE_BYTES] == scenarios.IN_USE  # every file


# -- state kept by path ---------------------------------------------------------------------
@scenarios.sync
async def test_expansion_and_cursor_survive_filter_thread_metric_and_view(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        tree = app.main.tree_view
        await pilot.press("right", "down", "down", "right", "down")
        assert path_of(tree.selected) == ["main", "load_config", "parse_rows"]
        before = functions(tree)
        await pilot.press("slash", *"load", "enter")
        assert path_of(tree.selected) == ["main", "load_config", "parse_rows"]
        assert functions(tree) == ["main", "  load_config", "    parse_rows"]
        await pilot.press("escape")
        assert functions(tree) == before
        assert path_of(tree.selected) == ["main", "load_config", "parse_rows"]
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("down", "enter")  # #1 MainThread: the largest after "all"
        await pilot.pause()
        assert app.session.tree.thread == 1
        assert path_of(tree.selected) == ["main", "load_config", "parse_rows"]
        assert "  load_config" in functions(tree) and "    parse_rows" in functions(tree)
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("home", "enter")
        await pilot.pause()
        assert app.session.tree.thread is None and functions(tree) == before
        await pilot.press("m")  # peak: worker_loop allocated after the peak, so it goes
        assert path_of(tree.selected) == ["main", "load_config", "parse_rows"]
        assert functions(tree) == before[:-1]
        await pilot.press("v", "v")
        assert app.screen.focused is tree
        assert path_of(tree.selected) == ["main", "load_config", "parse_rows"]
        assert functions(tree) == before[:-1]


@scenarios.sync
async def test_cursor_and_expansion_survive_internal_frames_toggle(tmp_path):
    w = ProgramStream()
    boot = ("_call_with_frames_removed", "<frozen importlib._bootstrap>", 241)
    w.alloc(1, 64, [("main", "a.py", 1), boot, ("load", "b.py", 2), ("leaf", "b.py", 3)])
    w.alloc(2, 32, [("main", "a.py", 1), ("other", "a.py", 7)])
    w.write(tmp_path / "c.mtrace")
    app = MemtraceApp(scenarios.session_from(tmp_path / "c.mtrace"))
    async with app.run_test(size=SIZE) as pilot:
        tree = app.main.tree_view
        await pilot.press("e")
        assert path_of(tree.selected) == ["main", "load", "leaf"]
        await pilot.press("i")  # the internal frame appears between main and load
        assert path_of(tree.selected) == ["main", "_call_with_frames_removed", "load", "leaf"]
        assert functions(tree) == ["main", "  _call_with_frames_removed", "    load",
                                   "      leaf", "  other"]
        await pilot.press("i")
        assert path_of(tree.selected) == ["main", "load", "leaf"]
        assert functions(tree) == ["main", "  load", "    leaf", "  other"]


@scenarios.sync
async def test_state_survives_showing_a_long_internal_chain(tmp_path):
    """A real program's stacks start with some thirty interpreter frames above the first
    Python line: showing them must not lose the expansion or the cursor."""
    w = ProgramStream()
    chain = [(f"_boot_{i}", "<frozen importlib._bootstrap>", 100 + i) for i in range(30)]
    middle = [(f"_glue_{i}", "<frozen importlib._bootstrap>", 300 + i) for i in range(12)]
    deep = [(f"level_{i}", "deep.py", i + 1) for i in range(20)]
    w.alloc(1, 640, [*chain, ("main", "a.py", 1), *middle, *deep, ("leaf", "b.py", 3)])
    w.alloc(2, 32, [*chain, ("main", "a.py", 1), ("other", "a.py", 7)])
    w.write(tmp_path / "c.mtrace")
    app = MemtraceApp(scenarios.session_from(tmp_path / "c.mtrace"))
    async with app.run_test(size=SIZE) as pilot:
        tree = app.main.tree_view
        await pilot.press("e")
        shown = ["main", *(f"level_{i}" for i in range(20)), "leaf"]
        assert path_of(tree.selected) == shown
        await pilot.press("i")
        assert path_of(tree.selected) == [f for f, _, _ in chain] + shown[:1] + \
            [f for f, _, _ in middle] + shown[1:]
        assert cursor_on_screen(tree)
        await pilot.press("i")
        assert path_of(tree.selected) == shown
        assert tree.row_count == len(shown) + 1  # everything still open, `other` too
        assert cursor_on_screen(tree)


# -- quitting -------------------------------------------------------------------------------
class RunningController:
    """A controller whose program is still running; records what the dialog chose."""

    log_path = None

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self, app) -> None:
        pass

    def set_paused(self, paused: bool) -> None:
        self.calls.append(f"paused={paused}")

    def stop_program(self) -> None:
        self.calls.append("stop")

    def detach(self) -> None:
        self.calls.append("detach")


def live_app():
    reader = StreamReader()
    session = Session(reader, CallTree(reader), live=True)
    controller = RunningController()
    return MemtraceApp(session, controller), controller


@scenarios.sync
async def test_every_way_of_quitting_asks_while_the_program_runs():
    app, controller = live_app()
    async with app.run_test(size=SIZE) as pilot:
        for key in ("q", "ctrl+q", "ctrl+c"):
            await pilot.press(key)
            await pilot.pause()
            assert type(app.screen).__name__ == "QuitScreen", key
            assert app.screen.focused.id == "cancel"  # a stray Enter changes nothing
            await pilot.press("ctrl+q")  # asking again does not stack dialogs
            assert len(app.screen_stack) == 2
            await pilot.press("q")  # q in the dialog cancels
            await pilot.pause()
            assert type(app.screen).__name__ == "MainScreen"
        await pilot.press("ctrl+p")  # the command palette's Quit
        await pilot.pause()
        await pilot.press(*"quit")
        await until(pilot, lambda screen=app.screen: any(  # listed before Enter chooses it
            "Quit" in str(o.prompt) for o in screen.query("CommandList").first().options))
        await pilot.press("enter")
        await until(pilot, lambda: type(app.screen).__name__ == "QuitScreen")
        await pilot.press("enter")  # focus is on Cancel
        await pilot.pause()
        assert type(app.screen).__name__ == "MainScreen" and controller.calls == []
        await pilot.press("ctrl+c")
        await pilot.pause()
        await pilot.press("u")
    assert controller.calls == ["detach"] and app.return_value == 0


def listed(app: MemtraceApp) -> list[str]:
    """The commands the open command palette lists (none when it is not open)."""
    if not isinstance(app.screen, CommandPalette) or not app.screen.query(CommandList):
        return []
    return [str(o.prompt).split("\n")[0] for o in app.screen.query_one(CommandList).options]


@scenarios.sync
async def test_enter_then_escape_in_the_command_palette_never_crashes():
    """Enter on a palette listing one command, then Escape before the palette has handled
    the selection: Textual's own palette dismissed itself twice and the app crashed (the
    program ran on untraced). "k" lists one command (Keys, which opens no screen) however the
    palette batches its list, so the screen stack's end state does not rest on the machine's
    speed; the gaps put Escape before, inside and after the window (about a millisecond)."""
    for gap in (0.0, 0.0005, 0.001, 0.002, 0.005):
        app, controller = live_app()
        async with app.run_test(size=SIZE) as pilot:
            type_fast(app, "ctrl+p", "k")
            for _ in range(25_000):  # finer than pilot.pause, which lets the window pass
                await asyncio.sleep(0.0002)
                if listed(app) == ["Keys"]:
                    break
            assert listed(app) == ["Keys"]
            type_fast(app, "enter")
            await asyncio.sleep(gap)
            type_fast(app, "escape")
            await pilot.pause(0.5)
            assert app._exception is None, gap
            assert [type(s).__name__ for s in app.screen_stack] == ["MainScreen"], gap
            assert controller.calls == []
            await pilot.press("ctrl+p", *"quit")  # Quit says that it asks first
            await until(pilot, lambda screen=app.screen: "asks first" in " ".join(
                str(o.prompt) for o in screen.query("CommandList").first().options))
            await pilot.press("escape")
        assert controller.calls == [], gap


@scenarios.sync
async def test_quit_dialog_stop_and_quit_at_once_after_exit():
    app, controller = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("s")
    assert controller.calls == ["stop"]
    app, controller = live_app()
    async with app.run_test(size=SIZE) as pilot:
        app.session.mark_exited(0)
        await pilot.press("ctrl+c")  # nothing runs any more: no question
    assert app.return_value == 0 and controller.calls == []


# -- screens own their keys -----------------------------------------------------------------
@scenarios.sync
async def test_log_screen_owns_its_keys_and_follows_output(sample, tmp_path):
    log = tmp_path / "prog.log"
    log.write_text("first line\n")
    session = scenarios.session_from(sample)
    session.log_path = str(log)
    app = MemtraceApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("L")
        await pilot.pause()
        screen = app.screen
        assert type(screen).__name__ == "LogScreen"
        keys = str(screen.query_one("KeyBar").render())
        assert "follow" in keys and "back" in keys
        for main_key in ("metric", "filter", "thread", "detail", "pause"):
            assert main_key not in keys
        await pilot.press("m", "p", "t", "d", "i", "v", "e")  # main-screen keys: nothing
        assert app.session.tree.metric.value == "in use" and not app.main.paused
        assert app.session.tree.thread is None and not app.session.tree.show_internal
        assert app.main.switcher.current == "tree" and app.main.detail.display
        assert app.screen is screen
        logw = screen.query_one("Log")
        with open(log, "a") as fh:
            fh.write("".join(f"line {i}\n" for i in range(200)))
        await until(pilot, lambda: "line 199" in "\n".join(logw.lines))
        await until(pilot, lambda: logw.is_vertical_scroll_end)  # followed the new output
        await pilot.press("f")
        assert not screen.following
        with open(log, "a") as fh:
            fh.write("after\n")
        await until(pilot, lambda: "after" in "\n".join(logw.lines))
        await pilot.press("home")
        await pilot.pause(0.3)
        assert logw.scroll_offset.y == 0  # not following: stays where the user looks
        await pilot.press("q")
        assert type(app.screen).__name__ == "MainScreen"


# -- the cursor is always on screen ---------------------------------------------------------
@scenarios.sync
async def test_cursor_visible_after_every_key_at_80x24(big):
    app = MemtraceApp(scenarios.session_from(big))
    async with app.run_test(size=(80, 24)) as pilot:
        tree = app.main.tree_view
        assert not app.main.detail.display  # below 30 rows the tree gets the room
        assert tree.page_height >= 12
        await pilot.press("right")
        for keys in (["end"], ["c"], ["e"], ["home"], ["pagedown"], ["pagedown"], ["end"],
                     ["c", "end"], ["home", "down", "e"], ["pageup"], ["end", "left"]):
            await pilot.press(*keys)
            assert cursor_on_screen(tree), (keys, tree.cursor, tree.top)
            assert tree.row_nodes[tree.cursor] is tree.selected
        await pilot.press("c", "home", "right", "end")
        assert tree.selected.frame.function == "idle" and cursor_on_screen(tree)
        await pilot.press("up")  # main's smallest child, sorted last
        assert tree.selected.frame.function == "level_1"
        await pilot.press("e")  # level_1 … level_30: deep, squeezed
        assert tree.selected.frame.function == "level_30" and cursor_on_screen(tree)
        row = "".join(text for text, _ in tree.row(tree.cursor))
        assert "30›" in row  # the depth, where 30 levels of guides would not fit
        assert row.index("level_30") + len("level_30") < tree.size.width - 1  # name readable


@scenarios.sync
async def test_mouse_wheel_moves_the_cursor(big):
    app = MemtraceApp(scenarios.session_from(big))
    async with app.run_test(size=(80, 24)) as pilot:
        tree = app.main.tree_view
        await pilot.press("right")
        for _ in range(10):
            tree.post_message(events.MouseScrollDown(tree, 5, 3, 0, 1, 0, False, False, False))
        await pilot.pause()
        assert tree.cursor == 30 and cursor_on_screen(tree)
        assert tree.selected is tree.row_nodes[30]
        tree.post_message(events.MouseScrollUp(tree, 5, 3, 0, -1, 0, False, False, False))
        await pilot.pause()
        assert tree.cursor == 27 and cursor_on_screen(tree)


@scenarios.sync
async def test_cursor_follows_its_node_when_rows_arrive_above_it():

    w = ProgramStream()
    w.alloc(1, 10, [("main", "a.py", 1), ("target", "a.py", 2)])
    part1 = w.take()
    for i in range(80):  # 80 bigger siblings sort above the selected one
        w.alloc(100 + i, 1000 + i, [("main", "a.py", 1), (f"big_{i}", "a.py", 10 + i)])
    part2 = w.data
    reader = StreamReader()
    session = Session(reader, CallTree(reader), live=True)
    r, wfd = os.pipe()
    controller = PipeController(r, session)
    app = MemtraceApp(session, controller)
    async with app.run_test(size=(80, 24)) as pilot:
        tree = app.main.tree_view
        os.write(wfd, part1)
        await wait_for(lambda: len(tree.row_nodes) == 1)
        await pilot.press("right", "down")
        target = tree.selected
        assert target.frame.function == "target"
        os.write(wfd, part2)
        await wait_for(lambda: len(tree.row_nodes) == 82)
        await until(pilot, lambda: tree.selected is target and tree.cursor == 81
                    and cursor_on_screen(tree))  # kept, and scrolled on a later repaint
        os.close(wfd)
        await wait_for(lambda: controller.feed.eof.is_set())
        await asyncio.sleep(0)


@scenarios.sync
async def test_percent_is_share_of_the_whole_tree_also_under_a_filter(sample):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        tree = app.main.tree_view
        await pilot.press("slash", *"parse", "enter", "n")
        row = "".join(text for text, _ in tree.row(tree.cursor))
        share = 100 * 30_000 / scenarios.IN_USE  # parse_rows under load_config: 30000 B
        assert f"{share:5.1f}%" in row and "100.0%" not in row
        await pilot.press("home")
        row = "".join(text for text, _ in tree.row(0))  # main, filtered to its parse path
        assert f"{100 * 30_000 / scenarios.IN_USE:5.1f}%" in row
        assert "%root" in str(app.query_one("#columns").render())


@scenarios.sync
async def test_slow_recounts_wait_for_a_pause_in_typing(sample):
    """On a big live tree a filter change recounts for a long time: typing then applies
    the filter once the typist pauses, not after every key."""
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        main._filter_cost = 0.5  # as measured on a tree of 350k stacks (several seconds)
        await pilot.press("slash", *"pars")
        await pilot.pause(0.4)
        assert app.session.tree.filter == ""  # still typing: nothing recounted yet
        await until(pilot, lambda: app.session.tree.filter == "pars")
        assert str(main.query_one("#filter-label").render()) == "filter /"
        await pilot.press("e", "enter")  # Enter applies at once
        assert app.session.tree.filter == "parse"


@scenarios.sync
async def test_click_on_the_scrollbar_jumps_there(big):
    app = MemtraceApp(scenarios.session_from(big))
    async with app.run_test(size=(80, 24)) as pilot:
        tree = app.main.tree_view
        await pilot.press("right")
        assert tree.row_count > tree.page_height
        bar_x = tree.content_region.x - tree.region.x + tree.size.width - 1
        last = tree.page_height - 1  # the last line not under a pane
        await pilot.click("#tree", offset=(bar_x, last))  # the bottom of the track
        assert tree.cursor == tree.row_count - 1 and cursor_on_screen(tree)
        await pilot.click("#tree", offset=(bar_x, 0))
        assert tree.cursor == 0 and tree.top == 0
        strip = tree.render_line(0)
        assert strip.text[-1] in "│┃"  # the scrollbar's track or thumb, always drawn


@pytest.mark.parametrize("width", [50, 64, 80, 100, 160])
@scenarios.sync
async def test_one_header_line_and_help_quit_at_every_width(sample, width):
    app = MemtraceApp(scenarios.session_from(sample))
    async with app.run_test(size=(width, 24)) as pilot:
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("end", "enter")  # a thread badge too
        await pilot.press("slash", *"parse", "enter", "p")  # filter and PAUSED badges
        main = app.main
        header = main.header_bar.render().plain
        assert "\n" not in header and len(header) <= main.header_bar.size.width
        assert "heap " in header and "peak " in header
        columns = main.columns.render().plain
        assert len(columns) <= main.columns.size.width
        assert "PAUSED" in columns  # the badges that matter most keep their place
        if width >= 64:
            assert "/parse" in columns
        keys = main.query_one("#keys").render().plain
        assert len(keys) <= main.query_one("#keys").size.width
        assert keys.rstrip().endswith("? help  q quit")
        assert main.header_bar.outer_size.height == 1
