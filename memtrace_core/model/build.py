"""Assemble a Session: reader + stack frames (native resolver when the capture has native
stacks) + call tree. Shared by `view`, `live`, tests and benchmarks."""

from __future__ import annotations

from memtrace_core.model.calltree import CallTree
from memtrace_core.model.session import Session
from memtrace_core.model.stacks import StackFrames


def stack_frames(reader, *, native: bool | None = None, symbolize: bool = True) -> StackFrames:
    """StackFrames for this reader; native stacks go through the symbols layer."""
    if native is None:
        native = bool((reader.header or {}).get("native"))
    resolver = None
    if native:
        from memtrace_core.model.native import NativeResolver

        resolver = NativeResolver(reader, symbolize=symbolize)
    return StackFrames(reader, resolver)


def session_for_capture(path, *, show_internal: bool = False, symbolize: bool = True) -> Session:
    """A finished session over a capture file."""
    from memtrace_core.reader import read_capture

    reader = read_capture(path)
    frames = stack_frames(reader, symbolize=symbolize)
    frames.show_internal = show_internal
    tree = CallTree(reader, frames)
    tree.rebuild()
    session = Session(reader, tree)
    error = getattr(reader, "error", None)
    if error:
        session.error = f"capture corrupt after record {reader.records}: {error}"
    return session
