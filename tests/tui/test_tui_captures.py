"""Pilot tests over real captures recorded by `memtrace run` (gcc-built C extension), and the
`view` command's bad-input handling."""

from __future__ import annotations

import asyncio

import pytest

from memtrace_core.frames import FrameKind
from memtrace_core.model.build import session_for_capture
from memtrace_core.model.metrics import LIVE_BYTES, LIVE_COUNT
from memtrace_tui.app import MemtraceApp
from memtrace_tui.tree_view import CallTreeView
from tests.tui import scenarios

LEAKED = 5000011 + 5001024 + 5002037

SCRIPT = """\
import mtext


def do_leak():
    mtext.leak_pattern()  # @leak


do_leak()
"""


@pytest.fixture(scope="module")
def native_capture(mt, tmp_path_factory):
    d = tmp_path_factory.mktemp("native")
    return mt.trace(d, SCRIPT, options=("--native",)).check().capture


@scenarios.sync
async def test_view_real_native_capture_names_replace_unresolved_in_place(native_capture,
                                                                           tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # cold symbolizer
    session = session_for_capture(native_capture)
    try:
        app = MemtraceApp(session)
        async with app.run_test(size=(140, 45)) as pilot:
            tree = app.query_one("#tree", CallTreeView)
            await pilot.press("e")
            first = tree.selected
            assert first.total[LIVE_BYTES] > 0
            for _ in range(300):  # names arrive from the worker process
                await pilot.pause(0.05)
                frame = tree.selected.frame  # a symbol-table name may come before DWARF's
                if frame.function == "mt_leaf" and frame.file.endswith("mtext.c"):
                    break
            leaf = tree.selected
            assert leaf.frame.function == "mt_leaf" and leaf.frame.kind is FrameKind.NATIVE
            # the selection followed the replaced node: still the hottest leaf, no jump
            assert leaf.own[LIVE_BYTES] == LEAKED and leaf.own[LIVE_COUNT] == 3
            path = [n.frame.function for n in leaf.path()]
            assert path.index("do_leak") < path.index("leak_pattern") < path.index("mt_outer")
            assert path.index("mt_outer") < path.index("mt_middle") < path.index("mt_leaf")
            text = str(app.query_one("#detail").render())
            assert f"({LEAKED} B) in 3" in text and "mtext.c:" in text
            assert session.tree.pending_names() == 0
    finally:
        session.tree.close()


USER_SCRIPT = """\
import mtext


def do_leak():
    mtext.leak_pattern()


def hold():
    return bytearray(7_000_003)  # @hold


do_leak()
kept = hold()
"""


@scenarios.sync
async def test_native_table_sorts_by_own_of_user_code_first(mt, tmp_path, monkeypatch):
    """With native frames every byte's own frame is an allocator; "own (user code)" gives
    each stack's bytes to its innermost Python line or user library instead."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    capture = mt.trace(tmp_path, USER_SCRIPT, options=("--native",)).check().capture
    session = session_for_capture(capture)
    try:
        app = MemtraceApp(session)
        async with app.run_test(size=(140, 45)) as pilot:
            for _ in range(300):  # every native name in
                await pilot.pause(0.05)
                if session.tree.pending_names() == 0 and not session.tree.busy:
                    break
            await pilot.press("v")
            table = app.query_one("#table")
            assert table.sort == "user"
            assert "user own↓" in str(app.query_one("#columns").render())
            top = [loc.frame.function for loc in table.row_locations[:2]]
            assert top == ["do_leak", "hold"] or top == ["mt_leaf", "hold"], top
            leak = table.row_locations[0]
            assert leak.user[LIVE_BYTES] == LEAKED
            held = table.row_locations[1]
            assert held.frame.kind is FrameKind.PYTHON and held.frame.line == 9  # @hold
            assert held.own[LIVE_BYTES] == 0  # under "own" the allocator has these bytes
            assert held.user[LIVE_BYTES] == held.total[LIVE_BYTES] == 7_000_004  # and its NUL
            row = "".join(text for text, _ in table.row(1))
            assert row.split()[0:2] == ["6.7", "MiB"]  # the first column is the user figure
            # every byte goes to exactly one user frame: the column adds up to the root
            everything = session.tree.top_locations("user", 0)
            assert sum(loc.user[LIVE_BYTES] for loc in everything) == \
                session.tree.root.total[LIVE_BYTES]
            await pilot.press("s")  # own: an allocator comes first now
            assert table.sort == "own"
            assert table.row_locations[0].frame.kind is not FrameKind.PYTHON
            assert table.row_locations[0].frame.function != "hold"
    finally:
        session.tree.close()


@scenarios.sync
async def test_internal_frames_toggle_keeps_the_cursor_on_a_real_native_capture(
        native_capture, tmp_path, monkeypatch):
    """Shown, the interpreter's start-up chain (some thirty frames) sits above the first
    Python line; hidden, the same native frames also start the stacks whose Python frames
    are all internal (the runner compiling the script). `i` twice comes back to the same
    node, with its path open."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    session = session_for_capture(native_capture)
    try:
        app = MemtraceApp(session)
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(300):
                await pilot.pause(0.05)
                if session.tree.pending_names() == 0 and not session.tree.busy:
                    break
            tree = app.query_one("#tree", CallTreeView)
            await pilot.press("e")

            def path() -> list[str]:
                return [f"{n.frame.function}:{n.frame.line}" for n in tree.selected.path()]

            hidden = path()
            assert hidden[-1].startswith("mt_leaf:") and hidden[0].startswith("<module>:")
            await pilot.press("i")
            shown = path()
            assert len(shown) > len(hidden) + 10 and shown[-1] == hidden[-1]
            assert [f for f in shown if f in hidden] == hidden  # the same path, with more
            await pilot.press("i")
            assert path() == hidden
            assert all(n.id in tree.expanded for n in tree.selected.path()[:-1])
            assert tree.top <= tree.cursor < tree.top + tree.page_height
    finally:
        session.tree.close()


@scenarios.sync
async def test_view_real_capture_python_only(mt, tmp_path):
    capture = mt.trace(tmp_path, SCRIPT).check().capture
    session = session_for_capture(capture)
    app = MemtraceApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("e")
        tree = app.query_one("#tree", CallTreeView)
        node = session.tree.find("<module>", "do_leak")
        assert node is not None and node.total[LIVE_BYTES] >= LEAKED
        assert tree.selected.path()[1] is node
        await asyncio.sleep(0)


def test_view_bad_input_is_one_line(mt, tmp_path):
    bad = tmp_path / "bad.mtrace"
    bad.write_bytes(b"not a capture at all")
    for target in (bad, tmp_path / "missing.mtrace"):
        proc = mt.cli("view", str(target), cwd=tmp_path)
        err = proc.stderr.decode()
        assert proc.returncode == 1 and err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith("memtrace: error:")


def test_live_bad_input_is_one_line(mt, tmp_path):
    proc = mt.cli("live", "no-such-script.py", cwd=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and "can't open file" in err
    (tmp_path / "ok.py").write_text("pass\n")
    proc = mt.cli("live", "ok.py", cwd=tmp_path)  # stdout is not a terminal here
    assert proc.returncode == 1 and "needs a terminal" in proc.stderr.decode()


SAMPLED_SCRIPT = """\
def keep():
    out = []
    for _ in range(40):
        out.append(bytearray(300_000))  # @keep
    return out


kept = keep()
"""


@scenarios.sync
async def test_sampled_capture_marks_every_number_as_an_estimate(mt, tmp_path):
    """A sampled capture's tree and detail pane show estimates: the column bar says so,
    the detail pane marks each number and gives no exact bytes beside them; an exact
    capture of the same program shows neither mark and the exact bytes."""
    for options, sampled in ((("--sample", "64KiB"), True), ((), False)):
        capture = mt.trace(tmp_path, SAMPLED_SCRIPT, options=options).check().capture
        session = session_for_capture(capture)
        try:
            app = MemtraceApp(session)
            async with app.run_test(size=(140, 45)) as pilot:
                await pilot.press("e")  # the hottest path: keep's line
                await pilot.pause()
                tree = app.query_one("#tree", CallTreeView)
                assert tree.selected.frame.function == "keep"
                kept = tree.selected.total[LIVE_BYTES]
                columns = str(app.query_one("#columns").render())
                detail = str(app.query_one("#detail").render())
                if sampled:
                    assert "≈ sampled" in columns
                    assert "in use: total ≈ " in detail and " B) in" not in detail
                else:
                    assert kept == 40 * 300_001  # a bytearray's buffer holds a NUL more
                    assert "≈" not in columns and "≈" not in detail
                    assert f"({kept} B) in" in detail
                await pilot.press("d")  # the detail pane hidden: the selection line instead
                await pilot.pause()
                line = str(app.query_one("#selection-line").render())
                assert ("≈" in line) is sampled
        finally:
            session.tree.close()
