"""Snapshot tests (pytest-textual-snapshot) of the main screen, table view and detail pane.

The capture is generated (fixed pid, times, command), so the screens are deterministic.
Update with `pytest tests/tui --snapshot-update` after an intended UI change.
"""

from __future__ import annotations

import pytest
import scenarios

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
