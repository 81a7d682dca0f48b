"""The legend: which colour and mark is which frame kind."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from memtrace_core.frames import FrameKind
from memtrace_tui.kinds import KIND_LABELS, KIND_STYLES


def legend_text(log_path: str | None = None) -> Text:
    t = Text()
    for kind in FrameKind:
        t.append(f"{kind.mark} {KIND_LABELS[kind]}", style=KIND_STYLES[kind])
        t.append("   ")
    if log_path:
        t.append(f"program output: {log_path} (L)", style="#808080")
    return t


class Legend(Static):
    DEFAULT_CSS = """
    Legend { height: 1; padding: 0 1; }
    """

    def __init__(self, log_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.log_path = log_path

    def on_mount(self) -> None:
        self.update(legend_text(self.log_path))
