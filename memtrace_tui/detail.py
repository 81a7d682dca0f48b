"""Detail pane for the selected frame: function, full file:line, kind, library, numbers and
the source line when the file is on disk."""

from __future__ import annotations

import linecache
import os

from rich.text import Text
from textual.widgets import Static

from memtrace_core.frames import Frame
from memtrace_core.model import format_bytes
from memtrace_core.model.metrics import (
    ALLOC_BYTES,
    ALLOC_COUNT,
    LIVE_BYTES,
    LIVE_COUNT,
    PEAK_BYTES,
    PEAK_COUNT,
)
from memtrace_tui.kinds import KIND_LABELS, KIND_STYLES


def source_line(frame: Frame) -> str | None:
    """The frame's source line, stripped, when its file exists on disk."""
    if not frame.file or frame.line <= 0 or not os.path.isfile(frame.file):
        return None
    text = linecache.getline(frame.file, frame.line)
    return text.strip() or None


def detail_text(frame: Frame | None, own: list[int], total: list[int]) -> Text:
    t = Text()
    if frame is None:
        t.append("no frame selected", style="#808080")
        return t
    style = KIND_STYLES[frame.kind]
    t.append(frame.function, style=style)
    t.append(f"   {frame.kind.mark} {KIND_LABELS[frame.kind]}\n", style=style)
    where = f"{frame.file}:{frame.line}" if frame.file else "(no source file)"
    t.append(where + "\n", style="#d0d0d0")
    if frame.module:
        t.append(f"library {frame.module}\n", style="#808080")
    src = source_line(frame)
    if src:
        t.append(f"  {frame.line} │ ", style="#808080")
        t.append(src + "\n", style="#ffffaf")
    for label, b, c in (("in use", LIVE_BYTES, LIVE_COUNT), ("peak", PEAK_BYTES, PEAK_COUNT),
                        ("allocated", ALLOC_BYTES, ALLOC_COUNT)):
        t.append(f"{label:>9}: ", style="#808080")
        t.append(f"total {format_bytes(total[b])} ({total[b]} B) in {total[c]}  "
                 f"own {format_bytes(own[b])} ({own[b]} B) in {own[c]}\n")
    return t


class DetailPane(Static):
    DEFAULT_CSS = """
    DetailPane { height: 9; border-top: solid $primary; padding: 0 1; }
    """

    def show(self, frame: Frame | None, own: list[int], total: list[int]) -> None:
        text = detail_text(frame, own, total)
        if text.plain != getattr(self, "_shown", None):
            self._shown = text.plain
            self.update(text, layout=False)  # fixed height: a relayout would cost a frame
