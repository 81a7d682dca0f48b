"""`?`: every key, one line each."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = [
    ("↑ ↓ / j k", "move the cursor (PgUp/PgDn, Home/End too)"),
    ("→ / l / enter", "expand the node (again: step into it)"),
    ("← / h", "collapse the node, or go to its parent"),
    ("e", "expand the hottest path from the selected node"),
    ("c", "collapse all"),
    ("/", "filter by function or file substring (empty = clear)"),
    ("m", "cycle metric: in use / peak / total allocated / allocations"),
    ("t", "choose a thread (numbers become that thread's own)"),
    ("i", "show/hide interpreter-internal frames"),
    ("v", "switch call tree / top-locations table"),
    ("s", "table: sort by own / total / count"),
    ("p / space", "pause the view (data keeps being read)"),
    ("d", "toggle the detail pane"),
    ("L", "program output log (live mode)"),
    ("?", "this help"),
    ("q", "quit (asks what to do with a running program)"),
]


def help_text() -> str:
    lines = ["[b]memtrace keys[/b]", ""]
    lines += [f"[b #87d7ff]{k:>14}[/]  {what}" for k, what in KEYS]
    lines += ["", "Marks: [py] Python  [c] native  [inl] inlined  [?] unresolved",
              "", "escape or ? to close"]
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: 80; height: auto; border: round $primary;
                          background: $surface; padding: 1 2; }
    """

    def compose(self) -> ComposeResult:
        yield Static(help_text())

    def action_close(self) -> None:
        self.dismiss(None)
