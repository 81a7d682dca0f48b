"""The legend: which colour and mark is which frame kind."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from memtrace_core.frames import FrameKind
from memtrace_tui.kinds import KIND_LABELS, KIND_STYLES


def legend_text() -> Text:
    t = Text()
    for kind in FrameKind:
        t.append(f"{kind.mark} {KIND_LABELS[kind]}", style=KIND_STYLES[kind])
        t.append("   ")
    return t


class Legend(Static):
    DEFAULT_CSS = """
    Legend { height: 1; padding: 0 1; }
    """

    def on_mount(self) -> None:
        self.update(legend_text())
