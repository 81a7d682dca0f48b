"""Frame-kind styles for the widgets: the colours, labels and locations are the reports'
(memtrace_core/report/kinds.py), so the UI and every report read alike."""

from __future__ import annotations

from rich.style import Style

from memtrace_core.report.kinds import KIND_COLOURS, KIND_LABELS
from memtrace_core.report.kinds import short_location as location

__all__ = ["KIND_COLOURS", "KIND_LABELS", "KIND_STYLES", "location"]

KIND_STYLES = {kind: Style(color=colour) for kind, colour in KIND_COLOURS.items()}
