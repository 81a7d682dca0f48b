"""Snapshot tests (pytest-textual-snapshot): the main screen, table and detail pane at the
sizes terminals open at (80×24, 100×30), a deep stack at 80×24, the light theme and NO_COLOR.

The captures are generated (fixed pid, times, command), so the screens are deterministic.
Update with `pytest tests/tui --snapshot-update` after an intended UI change, and look at
the new SVGs before committing them.
"""

from __future__ import annotations

import pytest
import scenarios
from tui_streams import StreamWriter

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.model import CallTree, Session
from memtrace_core.reader import read_capture
from memtrace_tui.app import MemtraceApp

SMALL = (80, 24)
MEDIUM = (100, 30)


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.mtrace"
    scenarios.write_sample(path)
    return path


@pytest.fixture
def app(sample):
    return MemtraceApp(scenarios.session_from(sample))


def test_main_screen(snap_compare, app):
    assert snap_compare(app, terminal_size=MEDIUM, press=["e"])


def test_main_screen_80x24(snap_compare, app):
    assert snap_compare(app, terminal_size=SMALL, press=["e"])


def test_table_view(snap_compare, app):
    assert snap_compare(app, terminal_size=MEDIUM, press=["v"])


def test_detail_pane_on_parse_rows(snap_compare, app):
    assert snap_compare(app, terminal_size=MEDIUM, press=["right", "down", "down", "right",
                                                           "down", "m"])


def test_filter_highlights_and_badges_80x24(snap_compare, app):
    """Live filter text in the box, matches highlighted, badges in the column line."""
    assert snap_compare(app, terminal_size=SMALL, press=["slash", *"parse", "enter", "n",
                                                          "p", "slash", "l", "wait:400"])


def test_deep_stack_80x24(snap_compare, tmp_path):
    path = tmp_path / "big.mtrace"
    scenarios.write_big(path)
    app = MemtraceApp(scenarios.session_from(path))
    assert snap_compare(app, terminal_size=SMALL, press=["right", "end", "up", "e"])


def test_light_theme(snap_compare, app):
    async def light(pilot):
        pilot.app.theme = "textual-light"
        await pilot.press("right", "down", "down", "right", "down")

    assert snap_compare(app, terminal_size=MEDIUM, run_before=light)


def test_no_color(snap_compare, sample, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = MemtraceApp(scenarios.session_from(sample))
    assert snap_compare(app, terminal_size=MEDIUM, press=["e"])


def write_native(path) -> None:
    """Python, native, inlined and unresolved frames in one deterministic capture."""
    w = StreamWriter(pid=5151, argv=("native_app.py",), native=True)
    base = 0x7F0000000000
    w.maps([["/opt/demo/libdemo.so", base, "ab12", [[0, 0x10000, 5, 0]]],
            ["/usr/lib/libpython3.11.so.1.0", 0x7E0000000000, "cd34", [[0, 0x100000, 5, 0]]]])
    w.tick(0)
    main = ("main", scenarios.APP, 17)
    # outermost first: the eval loop running main(), mt_middle, mt_leaf (+ inlined helper)
    w.alloc(0x1000, 5_000_011, [main], native=[0x7E0000000100, base + 0x1100, base + 0x1000])
    w.alloc(0x2000, 4096, [main], native=[0x7E0000000100, base + 0x3000])  # never named
    w.tick(50_000)
    w.trailer(0.05, 0)
    w.save(path)


LIB, PY = "/opt/demo/libdemo.so", "/usr/lib/libpython3.11.so.1.0"
MODULES = {0x7F0000000000: LIB, 0x7E0000000000: PY}


def native_names(base: int = 0x7F0000000000) -> dict[int, list[Frame]]:
    return {
        base + 0x1000: [Frame("make_buffer", "demo.c", 42, FrameKind.INLINE, LIB),
                        Frame("mt_leaf", "demo.c", 45, FrameKind.NATIVE, LIB)],
        base + 0x1100: [Frame("mt_middle", "demo.c", 52, FrameKind.NATIVE, LIB)],
        0x7E0000000100: [Frame("_PyEval_EvalFrameDefault", "ceval.c", 5000, FrameKind.NATIVE,
                               PY)],
    }


def native_app(tmp_path) -> MemtraceApp:
    path = tmp_path / "native.mtrace"
    write_native(path)
    reader = read_capture(path)
    namer = scenarios.GivenNames(native_names(), MODULES)  # base + 0x3000 stays unnamed
    tree = CallTree(reader, namer)
    tree.rebuild()
    return MemtraceApp(Session(reader, tree))


def test_frame_kinds_and_legend(snap_compare, tmp_path):
    assert snap_compare(native_app(tmp_path), terminal_size=MEDIUM, press=["e"])


def test_frame_kinds_light_theme(snap_compare, tmp_path):
    async def light(pilot):
        pilot.app.theme = "textual-light"
        await pilot.press("e")

    assert snap_compare(native_app(tmp_path), terminal_size=MEDIUM, run_before=light)


def write_deep_native(path) -> tuple[dict[int, list[Frame]], dict[int, str]]:
    """A Python caller over 40 native frames of one library (C++ names, inlined helpers):
    the names the namer gives, and the modules."""
    w = StreamWriter(pid=6262, argv=("deep_native.py",), native=True)
    base = 0x7F0000000000
    w.maps([["/opt/demo/libdeep.so", base, "ef56", [[0, 0x100000, 5, 0]]],
            [PY, 0x7E0000000000, "cd34", [[0, 0x100000, 5, 0]]]])
    w.tick(0)
    depth = 40
    ips = [0x7E0000000100] + [base + 0x1000 + 0x40 * i for i in range(depth)]
    main = ("main", scenarios.APP, 17)
    w.alloc(0x1000, 3 * 1024 * 1024, [main], native=ips)
    w.alloc(0x2000, 4096, [main], native=ips[:depth // 2])
    w.tick(10_000)
    w.trailer(0.01, 0)
    w.save(path)
    names = dict(native_names())
    for i in range(depth):
        frames = [Frame(f"deep::Walker<Node{i}>::visit_level_{i}", "src/walker.cpp", 100 + i,
                        FrameKind.NATIVE, "/opt/demo/libdeep.so")]
        if i % 5 == 4:
            frames.insert(0, Frame(f"deep::inline_step_{i}", "src/walker.h", 10 + i,
                                   FrameKind.INLINE, "/opt/demo/libdeep.so"))
        names[base + 0x1000 + 0x40 * i] = frames
    return names, {base: "/opt/demo/libdeep.so", 0x7E0000000000: PY}


def test_deep_native_stack_80x24(snap_compare, tmp_path):
    path = tmp_path / "deep.mtrace"
    names, modules = write_deep_native(path)
    reader = read_capture(path)
    tree = CallTree(reader, scenarios.GivenNames(names, modules))
    tree.rebuild()
    app = MemtraceApp(Session(reader, tree))
    assert snap_compare(app, terminal_size=SMALL, press=["e"])
