"""The traced program's own stdout/stderr (kept in a log file so it never garbles the UI).

A screen of its own: only its keys work here and its footer lists only them. It follows
new output as the program writes it (`f` stops and resumes following).
"""

from __future__ import annotations

import os

from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Log, Static

from memtrace_tui.key_bar import KeyBar

TAIL_BYTES = 256 * 1024
POLL_SECONDS = 0.25


class LogScreen(Screen[None]):
    BINDINGS = [
        Binding("f", "toggle_follow", "Follow"),
        Binding("r", "reload", "Reload"),
        Binding("escape,q,L", "close", "Back"),
    ]
    DEFAULT_CSS = """
    LogScreen > #log-title { height: 1; background: $panel; padding: 0 1; }
    LogScreen > Log { height: 1fr; }
    """

    following: var[bool] = var(True, init=False)
    """New output scrolls into view (`f`); off, the log stays where the user looks."""

    def __init__(self, path: str | None) -> None:
        super().__init__()
        self.path = path
        self._offset = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="log-title")
        yield Log(id="log", auto_scroll=True, max_lines=20_000)
        yield KeyBar()

    def on_mount(self) -> None:
        self.action_reload()
        self.set_interval(POLL_SECONDS, self._poll)
        self.query_one(Log).focus()

    def _title(self) -> None:
        state = "following" if self.following else "not following (f follows)"
        self.query_one("#log-title", Static).update(
            f"program output: {self.path or '(none in this mode)'}  ·  {state}")

    def action_reload(self) -> None:
        log = self.query_one(Log)
        log.clear()
        self._offset = 0
        if not self.path or not os.path.exists(self.path):
            log.write_line("(no output)")
        else:
            self._offset = max(0, os.path.getsize(self.path) - TAIL_BYTES)
            self._poll()
        self._title()

    def _poll(self) -> None:
        """Append what the program wrote since the last look."""
        if not self.path:
            return
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except OSError:
            return
        if not data:
            return
        self._offset += len(data)
        log = self.query_one(Log)
        log.write(data.decode("utf-8", "replace"), scroll_end=self.following)

    def action_toggle_follow(self) -> None:
        self.following = not self.following

    def watch_following(self, following: bool) -> None:
        log = self.query_one(Log)
        log.auto_scroll = following
        if following:
            log.scroll_end(animate=False)
        self._title()

    def action_close(self) -> None:
        self.dismiss(None)
