"""The timeline in `view`: a program with three phases of known in-use bytes; `[`, `]`,
`{`, `}`, `M` and a click on the chart put the cursor in each phase, and the tree shows
exactly those bytes on the named lines (the header says which instant)."""

from __future__ import annotations

from pathlib import Path

from memtrace_core.model import Metric
from memtrace_core.model.build import session_for_capture
from memtrace_core.model.metrics import AT_BYTES, AT_COUNT
from memtrace_tui.app import MemtraceApp
from tests.cli import run_memtrace
from tests.tui import scenarios

# line 1 binds every global first: on 3.10 the module's dict grows when a new name is bound
# (576 B, live to the end), which would otherwise land on a phase's line
PROGRAM = """\
import time; phase1 = phase2 = None
phase1 = [bytearray(1_000_000) for _ in range(3)]  # @one
time.sleep(0.4)
phase2 = [bytearray(2_000_000) for _ in range(4)]  # @two
time.sleep(0.4)
del phase1
time.sleep(0.4)
"""
ONE, TWO = 3 * 1_000_001, 4 * 2_000_001


def _lines(tree) -> dict[int, tuple[int, int]]:
    return {n.frame.line: (n.total[AT_BYTES], n.total[AT_COUNT])
            for n in tree.children(tree.root)}


def _phase(tree) -> dict[int, tuple[int, int]]:
    return {line: figures for line, figures in _lines(tree).items() if line in (2, 4)}


@scenarios.sync
async def test_cursor_shows_each_phase_exactly(mt, tmp_path: Path):

    (tmp_path / "phases.py").write_text(PROGRAM)
    capture = tmp_path / "phases.mtrace"
    proc = run_memtrace("run", "-o", str(capture), "phases.py", cwd=tmp_path, env=mt.env,
                        timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    session = session_for_capture(capture, names="off")
    timeline = session.timeline
    assert timeline is not None and len(timeline.points) >= 10
    app = MemtraceApp(session)
    async with app.run_test(size=(100, 30)) as pilot:
        tree = session.tree
        await pilot.press("M")  # the peak: both phases in use
        assert tree.metric is Metric.AT_CURSOR
        assert _phase(tree) == {2: (ONE, 3), 4: (TWO, 4)}
        assert f"at {timeline.peak.t_us / 1e6:.2f}s" in str(app.main.header_bar.render())
        await pilot.press("left_curly_bracket")  # the start: the first instant
        assert tree.instant is timeline.points[0]
        while _phase(tree) != {2: (ONE, 3)}:  # step forward into phase one...
            await pilot.press("right_square_bracket")
            assert tree.instant is not None, "phase one never seen"
        at_one = tree.instant.t_us
        while _phase(tree) != {2: (ONE, 3), 4: (TWO, 4)}:  # ...then phase two...
            await pilot.press("right_square_bracket")
            assert tree.instant is not None, "phase two never seen"
        while _phase(tree) != {4: (TWO, 4)}:  # ...then phase three
            await pilot.press("right_square_bracket")
            assert tree.instant is not None, "phase three never seen"
        # stepping back: phase two again. Under load a TICK may fall between the three
        # frees of `del phase1`; such an instant shows exactly the blocks not yet freed.
        await pilot.press("left_square_bracket")
        while (back := _phase(tree)) != {2: (ONE, 3), 4: (TWO, 4)}:
            assert back[4] == (TWO, 4) and 2 in back, back
            bytes_, count = back[2]
            assert 1 <= count < 3 and bytes_ == count * 1_000_001, back
            await pilot.press("left_square_bracket")
        await pilot.press("right_curly_bracket")  # the end: the capture as it finished
        assert tree.instant is None and tree.metric is Metric.IN_USE
        # a click on the chart at phase one's time
        end = tree.figures.last_time_us
        chart = app.main.chart
        await pilot.pause()
        x = 10 + 1 + round(at_one / end * (chart.plot_width - 1))
        await pilot.click(chart, offset=(x + 1, 0))  # +1: the chart's left padding
        assert tree.instant is not None and _phase(tree) == {2: (ONE, 3)}, tree.instant
