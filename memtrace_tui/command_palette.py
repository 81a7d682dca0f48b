"""Textual's command palette, safe against Escape typed right after Enter.

Enter on a list of one command selects it through a message the palette handles later; if
Escape closed the palette in between (a window of about a millisecond), Textual's palette
dismisses itself a second time and the app crashes (ScreenStackError, "Can't pop screen"),
leaving the traced program running untraced. Here a selection that arrives after the
palette closed is dropped: Escape meant "never mind".
"""

from __future__ import annotations

from textual.command import CommandPalette
from textual.widgets import Button, Input


class SafeCommandPalette(CommandPalette):
    """The command palette, ignoring selections that arrive after it closed."""

    def _select_or_command(self, event: Input.Submitted | Button.Pressed | None = None) -> None:
        if self not in self.app.screen_stack:
            if event is not None:
                event.stop()
            return
        super()._select_or_command(event)
