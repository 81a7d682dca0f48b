"""Small messages posted from background threads; floods of updates merge into one."""

from __future__ import annotations

from textual.message import Message


class ModelUpdated(Message):
    """The model changed; widgets repaint from it. Unprocessed duplicates are dropped."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ModelUpdated)


class ProgramExited(Message):
    """The traced program ended (exit status, or -signal), with memtrace's notes about the
    run, if any (the runner's "memtrace: note:" lines, e.g. a pool it could not see into)."""

    def __init__(self, exit_code: int | None, notes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.exit_code = exit_code
        self.notes = notes


class SelectionChanged(Message):
    """The cursor moved to another node or location (the detail pane follows)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SelectionChanged)
