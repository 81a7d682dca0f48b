"""Frame-kind colours, marks and labels shared by every report (terminal and HTML).

The same colours as the TUI: green Python, blue native C/C++, magenta inlined, amber
name pending (live only), grey no symbol; the text mark ([py] [c] [inl] [?] [-]) tells
them apart without colour.
"""

from __future__ import annotations

import os

from memtrace_core.frames import Frame, FrameKind

KIND_COLOURS = {
    FrameKind.PYTHON: "#5fd75f",
    FrameKind.NATIVE: "#5fafff",
    FrameKind.INLINE: "#d787ff",
    FrameKind.UNRESOLVED: "#d7af5f",
    FrameKind.NO_SYMBOL: "#949494",
}
KIND_LABELS = {
    FrameKind.PYTHON: "Python",
    FrameKind.NATIVE: "native C/C++",
    FrameKind.INLINE: "inlined",
    FrameKind.UNRESOLVED: "name pending",
    FrameKind.NO_SYMBOL: "no symbol",
}


def short_location(frame: Frame) -> str:
    """`file.c:12` (basename) or the library for frames without a file."""
    if frame.file:
        name = os.path.basename(frame.file)
        return f"{name}:{frame.line}" if frame.line else name
    return os.path.basename(frame.module) if frame.module else ""


def frame_json(frame: Frame) -> dict:
    """The frame's fields as JSON reports print them."""
    return {"function": frame.function, "file": frame.file, "line": frame.line,
            "kind": frame.kind.value, "module": frame.module}
