"""Headless model of a profile: call tree, top locations, heap history and program status.

Built from the reader (docs/READER_API.md) and the symbols layer; the TUI renders it and
the reports read it. Nothing here imports textual.
"""

from memtrace_core.model.calltree import CallTree, Figures, Location, Node
from memtrace_core.model.metrics import Metric, format_bytes
from memtrace_core.model.session import Session, Summary

__all__ = ["CallTree", "Figures", "Location", "Metric", "Node", "Session", "Summary",
           "format_bytes"]
