"""Quitting while the program runs: stop it, let it run on untraced, or cancel.

Every way of quitting (q, Ctrl+Q, Ctrl+C, the command palette) opens this dialog while the
program runs. Focus starts on Cancel, so a stray Enter changes nothing; `q` again cancels.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class QuitScreen(ModalScreen[str]):
    """Dismisses with 'stop', 'detach' or 'cancel'."""

    AUTO_FOCUS = "#cancel"
    BINDINGS = [
        Binding("escape,c,q", "choose('cancel')", "Cancel"),
        Binding("s", "choose('stop')", "Stop program"),
        Binding("u,r", "choose('detach')", "Run on untraced"),
        Binding("left", "app.focus_previous", "Previous", show=False),
        Binding("right", "app.focus_next", "Next", show=False),
    ]
    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: auto; max-width: 100%; height: auto;
                            border: round $warning; background: $surface; padding: 1 2; }
    QuitScreen Horizontal { height: auto; width: auto; margin-top: 1; }
    QuitScreen Button { margin: 0 1; width: auto; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("The program is still running. Quit and…")
            with Horizontal():
                # plain labels: "[s]" would be read as markup (strike-through)
                yield Button("Stop program (s)", id="stop", variant="error")
                yield Button("Run on untraced (u)", id="detach", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "cancel")

    def action_choose(self, what: str) -> None:
        self.dismiss(what)
