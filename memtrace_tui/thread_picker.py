"""Thread picker: all threads merged, or one thread whose own numbers the views then show."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from memtrace_core.model import format_bytes


class ThreadPicker(ModalScreen[int | None | bool]):
    """Returns a thread index, None for all threads, or False when cancelled."""

    BINDINGS = [Binding("escape,q,t", "cancel", "Cancel")]
    DEFAULT_CSS = """
    ThreadPicker { align: center middle; }
    ThreadPicker > #box { width: 70; height: auto; max-height: 20; border: round $primary;
                          background: $surface; }
    """

    def __init__(self, threads: list[tuple[int | None, str]], current: int | None) -> None:
        super().__init__()
        self.threads = threads
        self.current = current

    def compose(self) -> ComposeResult:
        options = [Option(label, id=str(idx)) for idx, label in self.threads]
        box = OptionList(*options, id="box")
        box.border_title = "Choose thread (enter)"
        yield box
        yield Label("")

    def on_mount(self) -> None:
        box = self.query_one(OptionList)
        for i, (idx, _label) in enumerate(self.threads):
            if idx == self.current:
                box.highlighted = i
        box.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        value = event.option.id
        self.dismiss(None if value == "None" else int(value))

    def action_cancel(self) -> None:
        self.dismiss(False)


def thread_choices(threads: dict[int, tuple[int, str]], totals: dict[int, list[int]],
                   bytes_index: int) -> list[tuple[int | None, str]]:
    """(index, label) rows: 'all threads' first, then threads by bytes."""
    rows: list[tuple[int | None, str]] = [(None, "all threads (merged)")]
    order = sorted(set(threads) | set(totals), key=lambda t: -totals.get(t, [0] * 6)[bytes_index])
    for idx in order:
        tid, name = threads.get(idx, (0, "?"))
        n = totals.get(idx, [0] * 6)[bytes_index]
        rows.append((idx, f"#{idx} {name or '?'} (tid {tid})  {format_bytes(n)}"))
    return rows
