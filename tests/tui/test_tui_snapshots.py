"""Snapshot tests (pytest-textual-snapshot) of the main screen, table view and detail pane.

The capture is generated (fixed pid, times, command), so the screens are deterministic.
Update with `pytest tests/tui --snapshot-update` after an intended UI change.
"""

from __future__ import annotations

import pytest
import scenarios
from tui_streams import StreamWriter

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.model import CallTree, Session
from memtrace_core.reader import read_capture
from memtrace_tui.app import MemtraceApp

SIZE = (110, 34)


@pytest.fixture
def app(tmp_path):
    path = tmp_path / "sample.mtrace"
    scenarios.write_sample(path)
    return MemtraceApp(scenarios.session_from(path))


def test_main_screen(snap_compare, app):
    assert snap_compare(app, terminal_size=SIZE, press=["e"])


def test_table_view(snap_compare, app):
    assert snap_compare(app, terminal_size=SIZE, press=["v"])


def test_detail_pane_on_parse_rows(snap_compare, app):
    assert snap_compare(app, terminal_size=SIZE, press=["right", "down", "down", "right",
                                                         "down", "m"])


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


def test_frame_kinds_and_legend(snap_compare, tmp_path):
    path = tmp_path / "native.mtrace"
    write_native(path)
    reader = read_capture(path)
    namer = scenarios.GivenNames(native_names(), MODULES)  # base + 0x3000 stays unnamed
    tree = CallTree(reader, namer)
    tree.rebuild()
    app = MemtraceApp(Session(reader, tree))
    assert snap_compare(app, terminal_size=SIZE, press=["e"])
