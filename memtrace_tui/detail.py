"""Detail pane for the selected frame: function, full file:line, kind, library, numbers and
the source line when the file is on disk."""

from __future__ import annotations

import linecache
import os

from textual.content import Content
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
from memtrace_core.sampling import ESTIMATE_MARK
from memtrace_tui.kinds import KIND_LABELS
from memtrace_tui.palette import MUTED, kind_variable


def source_line(frame: Frame) -> str | None:
    """The frame's source line, stripped, when its file exists on disk."""
    if not frame.file or frame.line <= 0 or not os.path.isfile(frame.file):
        return None
    text = linecache.getline(frame.file, frame.line)
    return text.strip() or None


def detail_content(frame: Frame | None, own: list[int], total: list[int],
                   sampled: bool = False) -> Content:
    """sampled: the numbers are a sampled capture's estimates, marked as such and without
    the exact bytes beside them (which would read as measured)."""
    if frame is None:
        return Content.assemble(("no frame selected", MUTED))
    colour = f"${kind_variable(frame.kind)}"
    pieces: list[tuple[str, str] | str] = [
        (frame.function, f"bold {colour}"),
        (f"   {frame.kind.mark} {KIND_LABELS.get(frame.kind, frame.kind.value)}\n", colour),
        (f"{frame.file}:{frame.line}" if frame.file else "(no source file)") + "\n",
    ]
    if frame.module:
        pieces.append((f"library {frame.module}\n", MUTED))
    src = source_line(frame)
    if src:
        pieces += [(f"  {frame.line} │ ", MUTED), (src + "\n", "$text-accent")]
    for label, b, c in (("in use", LIVE_BYTES, LIVE_COUNT), ("peak", PEAK_BYTES, PEAK_COUNT),
                        ("allocated", ALLOC_BYTES, ALLOC_COUNT)):
        pieces.append((f"{label:>9}: ", MUTED))
        if sampled:
            e = f"{ESTIMATE_MARK} "
            pieces.append(f"total {e}{format_bytes(total[b])} in {e}{total[c]:,}  "
                          f"own {e}{format_bytes(own[b])} in {e}{own[c]:,}\n")
        else:
            pieces.append(f"total {format_bytes(total[b])} ({total[b]} B) in {total[c]}  "
                          f"own {format_bytes(own[b])} ({own[b]} B) in {own[c]}\n")
    return Content.assemble(*pieces)


class DetailPane(Static):
    DEFAULT_CSS = """
    DetailPane { height: 8; border-top: solid $primary; padding: 0 1; }
    """

    def show(self, frame: Frame | None, own: list[int], total: list[int],
             sampled: bool = False) -> None:
        content = detail_content(frame, own, total, sampled)
        key = (frame, tuple(own), tuple(total), sampled)
        if key != getattr(self, "_shown", None):
            self._shown = key
            self.update(content, layout=False)  # fixed height: a relayout would cost a frame
