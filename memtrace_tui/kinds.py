"""Frame-kind labels and locations for the widgets: the reports' (memtrace_core/report/kinds.py),
so the UI and every report read alike. Their colours are theme variables (palette.py)."""

from __future__ import annotations

from memtrace_core.report.kinds import KIND_LABELS
from memtrace_core.report.kinds import short_location as location

__all__ = ["KIND_LABELS", "location"]
