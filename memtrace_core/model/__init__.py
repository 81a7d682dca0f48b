"""Headless model of a profile: call tree, top locations, heap history and program status.

Built from the reader (docs/READER_API.md) and the symbols layer; the TUI renders it and
never sees the wire format. Nothing here imports textual.
"""

from memtrace_core.model.calltree import CallTree, Location, Node
from memtrace_core.model.metrics import Metric, format_bytes
from memtrace_core.model.session import Session, Summary
from memtrace_core.model.stacks import StackFrames

__all__ = ["CallTree", "Location", "Metric", "Node", "Session", "StackFrames", "Summary",
           "format_bytes"]
