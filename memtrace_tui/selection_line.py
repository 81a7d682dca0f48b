"""One line under the tree when the detail pane is hidden (small terminals): the selected
frame's mark, whole name and file:line, so a frame deep in a narrow tree stays readable."""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from memtrace_core.frames import Frame
from memtrace_tui.palette import MUTED, kind_variable


def selection_content(frame: Frame | None, figure: str, width: int) -> Content:
    """`[c] name  file:line  in use 1.2 MiB`; the file's directories go first when it is
    long, then the figure, then the name is cut at its end."""
    if frame is None:
        return Content.assemble(("no frame selected", MUTED))
    colour = f"${kind_variable(frame.kind)}"
    head = f"{frame.kind.mark} {frame.function}"
    where = f"{frame.file}:{frame.line}" if frame.file and frame.line > 0 else frame.file
    numbers = f"  {figure}" if figure else ""
    room = width - len(head) - len(numbers) - 2
    if where and len(where) > room:
        base = where.rsplit("/", 1)[-1]
        where = base if len(base) >= room - 1 else "…" + where[-(room - 1):]
    if len(head) + 2 + len(where or "") + len(numbers) > width:
        numbers = ""
    pieces: list[tuple[str, str] | str] = [(head, f"bold {colour}")]
    if where:
        pieces += ["  ", where]
    if numbers:
        pieces.append((numbers, MUTED))
    return Content.assemble(*pieces)


class SelectionLine(Widget):
    DEFAULT_CSS = """
    SelectionLine { height: 1; padding: 0 1; background: $panel; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._shown: tuple[Frame | None, str] | None = None

    def show(self, frame: Frame | None, figure: str) -> None:
        """figure: the frame's total in the current metric, as text ("in use 1.2 MiB")."""
        if (frame, figure) != self._shown:
            self._shown = (frame, figure)
            self.refresh()

    def render(self) -> Content:
        frame, figure = self._shown or (None, "")
        return selection_content(frame, figure, max(1, self.size.width))
