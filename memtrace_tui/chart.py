"""Heap-over-time chart: a sparkline of tracked heap, with the RSS level beside it."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Sparkline, Static

from memtrace_core.model import Session, format_bytes


class HeapChart(Horizontal):
    """Tracked heap over the whole run (max per column); RSS now as text."""

    DEFAULT_CSS = """
    HeapChart { height: 3; padding: 0 1; }
    HeapChart > #chart-label { width: 22; }
    HeapChart > Sparkline { width: 1fr; height: 3; }
    """

    def compose(self) -> ComposeResult:
        self.label = Static("heap over time", id="chart-label")
        self.spark = Sparkline([0], id="chart")
        yield self.label
        yield self.spark

    min_interval = 1.0  # the chart moves slowly: redrawing it once a second is enough

    def refresh_from(self, session: Session, force: bool = False) -> None:
        """Redraw from the session's history (call with the lock held)."""
        now = time.monotonic()
        if not force and session.live and now - getattr(self, "_drawn", 0.0) < self.min_interval:
            return
        self._drawn = now
        width = max(10, self.size.width - 24)
        heap, rss = session.heap_series(width)
        data = heap or [0]
        if data != self.spark.data:
            self.spark.data = data
        top = max(heap) if heap else 0
        label = f"heap over time\nmax {format_bytes(top)}"
        if rss and rss[-1]:
            label += f"\nrss {format_bytes(rss[-1])}"
        if label != getattr(self, "_label", None):
            self._label = label
            self.label.update(label, layout=False)
