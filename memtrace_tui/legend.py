"""The legend: which colour and mark is which frame kind, and where the program's output is."""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from memtrace_core.frames import FrameKind
from memtrace_tui.kinds import KIND_LABELS
from memtrace_tui.palette import MUTED, kind_variable

SHORT_LABELS = {FrameKind.NATIVE: "native"}  # "native C/C++" where there is room


def legend_content(log_path: str | None, width: int) -> Content:
    pieces: list[tuple[str, str] | str] = []
    used = 0
    wide = width >= 100
    for kind in FrameKind:
        label = KIND_LABELS.get(kind, kind.value) if wide else SHORT_LABELS.get(
            kind, KIND_LABELS.get(kind, kind.value))
        text = f"{kind.mark} {label}"
        pieces += [(text, f"${kind_variable(kind)}"), "  "]
        used += len(text) + 2
    if log_path:
        room = width - used - len("output  (L)")
        shown = log_path if len(log_path) <= room else "…" + log_path[-max(1, room - 1):]
        if room >= 12:
            pieces += [("output ", MUTED), shown, (" (L)", MUTED)]
    return Content.assemble(*pieces)


class Legend(Widget):
    DEFAULT_CSS = """
    Legend { height: 1; padding: 0 1; }
    """

    def __init__(self, log_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.log_path = log_path

    def render(self) -> Content:
        return legend_content(self.log_path, self.size.width)
