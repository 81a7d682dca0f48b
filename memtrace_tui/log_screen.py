"""The traced program's own stdout/stderr (kept in a log file so it never garbles the UI)."""

from __future__ import annotations

import os

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

TAIL_BYTES = 256 * 1024


class LogScreen(Screen[None]):
    BINDINGS = [Binding("escape,L,q", "close", "Back"), Binding("r", "reload", "Reload")]

    def __init__(self, path: str | None) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        yield Static(f"program output: {self.path or '(none in this mode)'}", id="log-title")
        yield Log(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        log = self.query_one(Log)
        log.clear()
        if not self.path or not os.path.exists(self.path):
            log.write_line("(no output)")
            return
        with open(self.path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(self.path) - TAIL_BYTES))
            log.write(fh.read().decode("utf-8", "replace"))

    def action_close(self) -> None:
        self.dismiss(None)
