"""A scrolling list of pre-rendered rows with a cursor (Textual line API): the base of the
tree and table views. Rendering costs the visible rows only."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

CURSOR = Style(bgcolor="#303a4f", bold=True)


class LinesView(ScrollView, can_focus=True):
    """Rows are lists of (text, Style) pieces; `cursor` is the highlighted row index."""

    DEFAULT_CSS = """
    LinesView { height: 1fr; }
    """
    # Cursor movement shared by the tree and the table (subclasses add their own keys and
    # implement action_move).
    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "move(-20)", "Page up", show=False),
        Binding("pagedown", "move(20)", "Page down", show=False),
        Binding("home", "move(-1000000000)", "Top", show=False),
        Binding("end", "move(1000000000)", "Bottom", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rows: list[list[tuple[str, Style]]] = []
        self.cursor = 0
        self._strips: dict[tuple[int, bool], Strip] = {}  # rendered rows until set_rows
        self._styles: dict[tuple[int, bool], Style] = {}  # combined styles (costly to add)

    def set_rows(self, rows: list[list[tuple[str, Style]]], cursor: int) -> None:
        """Replace all rows; keep the cursor row visible."""
        old_rows, old_cursor = self.rows, self.cursor
        self.rows = rows
        self.cursor = max(0, min(cursor, len(rows) - 1)) if rows else 0
        width = max((sum(len(t) for t, _s in row) for row in rows), default=0)
        size = Size(width, len(rows))
        if size != self.virtual_size:
            self.virtual_size = size
        before = self.scroll_offset.y
        self.scroll_cursor_visible()
        top = self.scroll_offset.y
        if top != before or len(old_rows) != len(rows):
            self._strips.clear()
            self.refresh()
            return
        # repaint only the visible rows whose text changed: a full repaint of a big tree
        # costs a whole frame of the UI thread
        for y in range(top, min(len(rows), top + self.size.height)):
            if old_rows[y] != rows[y] or y in (old_cursor, self.cursor):
                self._strips.pop((y, False), None)
                self._strips.pop((y, True), None)
                self.refresh_line(y - top)

    def scroll_cursor_visible(self) -> None:
        if self.rows:
            self.scroll_to_region(Region(0, self.cursor, 1, 1), animate=False, force=True,
                                  immediate=True)

    def move_cursor(self, delta: int) -> None:
        if not self.rows:
            return
        old = self.cursor
        self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))
        if old != self.cursor:
            self.refresh_line(old - self.scroll_offset.y)
            self.refresh_line(self.cursor - self.scroll_offset.y)
            self.scroll_cursor_visible()
            self.cursor_moved()

    def cursor_moved(self) -> None:
        """Hook for subclasses (selection follows the cursor)."""

    def _style(self, style: Style, selected: bool) -> Style:
        key = (id(style), selected)
        combined = self._styles.get(key)
        if combined is None:
            combined = self.rich_style + style
            if selected:
                combined = combined + CURSOR
            self._styles[key] = combined
        return combined

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        base = self.rich_style
        if index >= len(self.rows):
            return Strip.blank(width, base)
        selected = index == self.cursor
        strip = self._strips.get((index, selected))
        if strip is None:
            strip = Strip([Segment(text, self._style(style, selected))
                           for text, style in self.rows[index]])
            self._strips[(index, selected)] = strip
        fill = self._style(Style(), selected) if selected else base
        return strip.crop_extend(scroll_x, scroll_x + width, fill)

    def on_click(self, event) -> None:
        index = self.scroll_offset.y + event.y
        if 0 <= index < len(self.rows):
            if index == self.cursor:
                self.row_activated()
            else:
                self.move_cursor(index - self.cursor)

    def row_activated(self) -> None:
        """A click on the row under the cursor (the tree toggles it)."""
