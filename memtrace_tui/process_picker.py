"""Process picker (`live --follow-fork`, key P): the program and each traced child with its
own numbers, and all of them together; choosing a child opens its capture, followed while
it is written (`memtrace view --follow`), and quitting that view comes back here."""

from __future__ import annotations

import os
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from memtrace_core.model import format_bytes

PROGRAM = "program"  # the picker's id of the program itself (its children: their paths)
ALL = "all"  # the picker's id of all processes together


@dataclass(frozen=True)
class ProcessFigures:
    """One process's own numbers, as the picker lists them."""

    pid: int
    command: str
    status: str
    heap_bytes: int
    peak_bytes: int
    allocated_bytes: int
    allocations: int


def capture_figures(path: str) -> ProcessFigures | None:
    """A child's numbers from its capture (being written, or finished); None when it cannot
    be read yet (the child created it a moment ago)."""
    from memtrace_core.capture import writer_alive
    from memtrace_core.errors import UserError
    from memtrace_core.reader import read_capture

    try:
        reader = read_capture(path)
    except (UserError, OSError):
        return None
    header = reader.header or {}
    if reader.complete:
        code = (reader.trailer or {}).get("exit_code")
        status = "exited" if code is None else f"exited with status {code}"
    else:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            status = "running" if writer_alive(fd) else "ended without a trailer"
        finally:
            os.close(fd)
    argv = header.get("argv", [])
    return ProcessFigures(int(header.get("pid", 0)), " ".join(argv[1:]) or "?", status,
                          reader.heap_bytes, reader.peak_bytes,
                          reader.total_allocated_bytes, reader.total_allocations)


def process_rows(program: ProcessFigures, children: dict[str, ProcessFigures | None]
                 ) -> list[tuple[str, str]]:
    """(id, label) rows: all processes together, the program, then each child by pid."""

    def numbers(f: ProcessFigures) -> str:
        return (f"heap {format_bytes(f.heap_bytes)}  peak {format_bytes(f.peak_bytes)}  "
                f"allocated {format_bytes(f.allocated_bytes)} in {f.allocations}")

    known = [program, *(f for f in children.values() if f is not None)]
    rows = [(ALL, f"all {len(known)} processes together  heap "
                 f"{format_bytes(sum(f.heap_bytes for f in known))}  allocated "
                 f"{format_bytes(sum(f.allocated_bytes for f in known))} in "
                 f"{sum(f.allocations for f in known)}")]
    rows.append((PROGRAM, f"pid {program.pid}  the program  {program.status}  "
                          f"{numbers(program)}"))
    for path, f in children.items():
        if f is None:
            rows.append((path, f"{os.path.basename(path)}  starting…"))
        else:
            rows.append((path, f"pid {f.pid}  {f.status}  {numbers(f)}  {f.command}"))
    return rows


class ProcessPicker(ModalScreen[str | None]):
    """Returns a child's capture path, PROGRAM, ALL, or None when cancelled."""

    BINDINGS = [Binding("escape,q,P", "cancel", "Cancel")]
    DEFAULT_CSS = """
    ProcessPicker { align: center middle; }
    ProcessPicker > #box { width: 90%; height: auto; max-height: 24; border: round $primary;
                           background: $surface; }
    """

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        box = OptionList(*[Option(label, id=f"row{i}") for i, (_, label) in
                           enumerate(self.rows)], id="box")
        box.border_title = "Processes: enter opens one (q there comes back)"
        yield box
        yield Label("")

    def on_mount(self) -> None:
        box = self.query_one(OptionList)
        box.highlighted = 1
        box.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        index = int((event.option.id or "row1")[3:])
        value = self.rows[index][0]
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


def view_command(path: str, all_processes: bool = False) -> tuple[list[str], dict[str, str]]:
    """`memtrace view --follow PATH` with this memtrace, importable even when not installed;
    with all_processes, `--all-processes` too (PATH: the program's capture, followed with
    its children's)."""
    import sys

    import memtrace_core

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(memtrace_core.__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                else "")
    how = ["--follow", "--all-processes"] if all_processes else ["--follow"]
    return [sys.executable, "-m", "memtrace_tui", "view", *how, path], env
