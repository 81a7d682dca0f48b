"""Frame-kind colours and marks: colour for the eye, a text mark for colourless terminals."""

from __future__ import annotations

from rich.style import Style

from memtrace_core.frames import Frame, FrameKind

KIND_COLOURS = {
    FrameKind.PYTHON: "#5fd75f",  # green
    FrameKind.NATIVE: "#5fafff",  # blue
    FrameKind.INLINE: "#d787ff",  # magenta
    FrameKind.UNRESOLVED: "#d7af5f",  # amber
}

KIND_STYLES = {kind: Style(color=colour) for kind, colour in KIND_COLOURS.items()}
KIND_LABELS = {
    FrameKind.PYTHON: "Python",
    FrameKind.NATIVE: "native C/C++",
    FrameKind.INLINE: "inlined",
    FrameKind.UNRESOLVED: "unresolved",
}


def location(frame: Frame) -> str:
    """`file:line` (basename) or the library for frames without a file."""
    if frame.file:
        name = frame.file.rsplit("/", 1)[-1]
        return f"{name}:{frame.line}" if frame.line else name
    if frame.module:
        return frame.module.rsplit("/", 1)[-1]
    return ""
