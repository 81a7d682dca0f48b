"""Snapshot tests (pytest-textual-snapshot): the main screen, table and detail pane at the
sizes terminals open at (80×24, 100×30), a deep stack at 80×24, the light theme and NO_COLOR.

The captures are generated (fixed pid, times, command), so the screens are deterministic.
Update with `pytest tests/tui --snapshot-update` after an intended UI change, and look at
the new SVGs before committing them.
"""

from __future__ import annotations

import pytest

from memtrace_core.model import CallTree, Session
from memtrace_core.reader import read_capture
from memtrace_tui.app import MemtraceApp
from tests.tui import scenarios

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


def test_frame_kinds_and_legend(snap_compare, tmp_path):
    assert snap_compare(scenarios.native_app(tmp_path), terminal_size=MEDIUM, press=["e"])


def test_frame_kinds_light_theme(snap_compare, tmp_path):
    async def light(pilot):
        pilot.app.theme = "textual-light"
        await pilot.press("e")

    assert snap_compare(scenarios.native_app(tmp_path), terminal_size=MEDIUM, run_before=light)


def test_deep_native_stack_80x24(snap_compare, tmp_path):
    path = tmp_path / "deep.mtrace"
    names, modules = scenarios.write_deep_native(path)
    reader = read_capture(path)
    tree = CallTree(reader, scenarios.GivenNames(names, modules))
    tree.rebuild()
    app = MemtraceApp(Session(reader, tree))
    assert snap_compare(app, terminal_size=SMALL, press=["e"])
