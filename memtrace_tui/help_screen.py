"""`?`: every key, one line each, and what the marks and colours mean."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from memtrace_core.frames import FrameKind
from memtrace_tui.kinds import KIND_LABELS
from memtrace_tui.palette import kind_variable

KEYS = [
    ("↑ ↓ / j k", "move the cursor (PgUp/PgDn, Home/End, the mouse wheel too)"),
    ("→ / l / enter", "expand the node (again: step into it)"),
    ("← / h", "collapse the node, or go to its parent"),
    ("e", "expand the hottest path from the selected node"),
    ("c", "collapse all"),
    ("/", "filter by function or file substring, live as you type"),
    ("n / N", "next / previous match of the filter"),
    ("escape", "clear the filter"),
    ("m", "metric: in use/peak/allocated/count/temporary/growth/Δ mark"),
    ("b  B", "mark now (Δ mark: the change since it) / clear the mark"),
    ("[ ] < >", "time cursor one / ten instants earlier or later"),
    ("{ }  M", "time cursor to the start / the end (now) / the peak"),
    ("t", "choose a thread (numbers become that thread's own)"),
    ("P", "live --follow-fork: the traced processes; enter opens a child's capture"),
    ("i", "show/hide interpreter-internal frames"),
    ("v", "switch call tree / top-locations table"),
    ("s", "table: sort by own / total / count; --native also user own (the default)"),
    ("p / space", "pause the view (data keeps being read)"),
    ("d", "toggle the detail pane"),
    ("L", "program output log (live mode; f follows)"),
    ("ctrl+p", "command palette (themes)"),
    ("?", "this help"),
    ("q / ctrl+q", "quit (asks what to do with a running program)"),
]


def help_content() -> Content:
    """Plain text pieces: the marks are data, never markup."""
    pieces: list[tuple[str, str] | str] = [("memtrace keys", "bold"), "\n\n"]
    for key, what in KEYS:
        pieces += [(f"{key:>14}", "bold $text-primary"), f"  {what}\n"]
    pieces.append("\nMarks: ")
    for kind in FrameKind:
        pieces += [(f"{kind.mark} {KIND_LABELS.get(kind, kind.value)}",
                    f"${kind_variable(kind)}"), "  "]
    pieces.append("\n\n%root: share of the whole tree in the current metric (all threads or "
                  "the chosen one;\n       a filter does not change it)\n")
    pieces.append("user own: bytes whose innermost user frame (Python, or a native library "
                  "outside\nthe system and site-packages) is this location\n")
    pieces.append("escape or ? to close")
    return Content.assemble(*pieces)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 84; max-width: 100%; height: auto; max-height: 100%;
                                  border: round $primary; background: $surface; }
    HelpScreen Static { padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(help_content())

    def action_close(self) -> None:
        self.dismiss(None)
