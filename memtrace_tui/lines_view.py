"""A list of rows with a cursor that is always on screen: the base of the tree and table views.

Rows are formatted on demand, only the visible ones (a tree of 100,000 rows costs what a
screenful costs). A row is a tuple of (text, roles) pieces; roles are space-separated
component-class names without the `lines--` prefix ("number", "python match", …), so every
colour comes from TCSS and the theme. The view scrolls itself: after every key, click,
wheel step and model update the cursor row is inside the window, by construction. The
scrollbar is drawn in the last column (track and thumb as distinct glyphs, so it reads
without colour too) only when the rows do not fit.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from memtrace_core.frames import FrameKind

Row = tuple[tuple[str, str], ...]

KIND_ROLES = {kind: kind.value for kind in FrameKind}
ROLES = {"number", "dim", "guide", "hot", "match", "cursor", "scrollbar", "scrollbar-thumb",
         *KIND_ROLES.values()}
TRACK, THUMB = "│", "┃"
WHEEL_STEP = 3


class LinesView(Widget, can_focus=True):
    """Subclasses implement `format_row(index)` and call `set_row_count(n, cursor)`."""

    COMPONENT_CLASSES = {f"lines--{role}" for role in ROLES}
    DEFAULT_CSS = """
    LinesView { height: 1fr; }
    """
    # Cursor movement shared by the tree and the table (subclasses add their own keys).
    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "move(-1000000000)", "Top", show=False),
        Binding("end", "move(1000000000)", "Bottom", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.row_count = 0
        self.cursor = 0
        self.top = 0  # index of the first visible row
        self._painted: dict[int, tuple[Row, bool] | None] = {}  # screen line -> what it shows
        self._formatted: dict[int, Row] = {}  # rows formatted since the last set_row_count
        self._role_styles: dict[tuple[str, bool], Style] = {}
        self._bar_state: tuple[bool, int, int, int] | None = None
        self.lock: AbstractContextManager = nullcontext()  # held while formatting rows

    # -- subclass interface ----------------------------------------------------------------
    def format_row(self, index: int) -> Row:
        """The pieces of row `index` (only called for visible rows)."""
        raise NotImplementedError

    def cursor_moved(self) -> None:
        """Hook: the cursor is on another row (selection follows it)."""

    def empty_text(self) -> str:
        """What the first line says when there are no rows (why the view is empty)."""
        return ""

    def row_activated(self) -> None:
        """Hook: a click on the row under the cursor (the tree toggles it)."""

    # -- rows and scrolling ----------------------------------------------------------------
    @property
    def page_height(self) -> int:
        return max(1, self.size.height)

    def row(self, index: int) -> Row:
        row = self._formatted.get(index)
        if row is None:
            with self.lock:
                row = self._formatted[index] = self.format_row(index)
        return row

    def set_row_count(self, count: int, cursor: int) -> None:
        """New rows (their content may have changed too); repaint the lines that differ."""
        self.row_count = count
        self.cursor = max(0, min(cursor, count - 1)) if count else 0
        self._formatted.clear()
        self._clamp_top()
        self._repaint_changed()

    def visible_range(self) -> range:
        return range(self.top, min(self.row_count, self.top + self.page_height))

    def _clamp_top(self) -> bool:
        """Move the window so the cursor is in it; True if it moved."""
        height, old = self.page_height, self.top
        top = self.top
        if self.cursor < top:
            top = self.cursor
        elif self.cursor >= top + height:
            top = self.cursor - height + 1
        top = max(0, min(top, self.row_count - height))
        self.top = top
        return top != old

    def _repaint_changed(self) -> None:
        """Refresh only screen lines whose row or cursor state changed (a full repaint of a
        big tree would cost a whole frame of the UI thread)."""
        height = self.page_height
        for index in self.visible_range():
            self.row(index)  # formatted now, under the caller's lock: one consistent state
        bar = (self.row_count > height, self.row_count, self.top, height)
        if bar != self._bar_state:  # the window or the scrollbar moved: everything
            self._bar_state = bar
            self.refresh()
            self._painted.clear()
            return
        for y in range(height):
            index = self.top + y
            shown = (self.row(index), index == self.cursor) if index < self.row_count else None
            if self._painted.get(y) != shown:
                self.refresh_line(y)

    def refresh_line(self, y: int) -> None:
        """Repaint screen line y (relative to the top of the view)."""
        if 0 <= y < self.page_height:
            self.refresh(Region(0, y, self.outer_size.width, 1))

    def move_cursor(self, delta: int) -> None:
        if not self.row_count:
            return
        self.move_to(max(0, min(self.row_count - 1, self.cursor + delta)))

    def move_to(self, index: int) -> None:
        """Put the cursor on row `index` and keep it in the window."""
        old = self.cursor
        self.cursor = max(0, min(index, self.row_count - 1)) if self.row_count else 0
        if self._clamp_top():
            self.refresh()
            self._painted.clear()
        elif old != self.cursor:
            self.refresh_line(old - self.top)
            self.refresh_line(self.cursor - self.top)
        if old != self.cursor:
            self.cursor_moved()

    def action_move(self, delta: int) -> None:
        self.move_cursor(delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(direction * max(1, self.page_height - 1))

    def on_resize(self, event: events.Resize) -> None:
        self._formatted.clear()  # column layout and indentation follow the width
        self._clamp_top()
        self._painted.clear()
        self.refresh()

    # -- styles ----------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._role_styles.clear()  # theme changed: recompute from TCSS
        self._painted.clear()

    def role_style(self, roles: str, selected: bool) -> Style:
        """The first role's full style, then the cursor's and the other roles' own rules on
        top (so a kind keeps its colour under the cursor, and a match shows on it)."""
        key = (roles, selected)
        style = self._role_styles.get(key)
        if style is None:
            names = [f"lines--{r}" for r in roles.split()]
            style = self.get_component_rich_style(names[0]) if names else self.rich_style
            overlays = (["lines--cursor"] if selected else []) + names[1:]
            for name in overlays:
                style += self._overlay(name)
            self._role_styles[key] = style
        return style

    def _overlay(self, name: str) -> Style:
        """A component's own rules; its background blended over the widget's (a partial
        style would keep a translucent background opaque)."""
        partial = self.get_component_rich_style(name, partial=True)
        if partial.bgcolor is None:
            return partial
        return partial + Style(bgcolor=self.get_component_rich_style(name).bgcolor)

    # -- rendering -------------------------------------------------------------------------
    def _scrollbar(self, y: int, height: int) -> str | None:
        """The scrollbar glyph for screen line y, or None when everything fits."""
        n = self.row_count
        if n <= height:
            return None
        thumb = max(1, round(height * height / n))
        start = round(self.top * (height - thumb) / max(1, n - height))
        return THUMB if start <= y < start + thumb else TRACK

    def render_line(self, y: int) -> Strip:
        width, height = self.size.width, self.page_height
        if self._clamp_top():  # resized or rows changed since the last paint
            self.refresh()
            self._painted.clear()
        bar = self._scrollbar(y, height)
        text_width = width - 1 if bar is not None else width
        index = self.top + y
        base = self.role_style("", False)  # the widget's own style, cached until it changes
        if index >= self.row_count:
            self._painted[y] = None
            strip = Strip.blank(text_width, base)
            if not self.row_count and y == 0 and (note := self.empty_text()):
                self._painted[y] = ((note, "dim"),), False  # repainted when rows come
                strip = Strip([Segment(note, self.role_style("dim", False))]).crop_extend(
                    0, text_width, base)
        else:
            selected = index == self.cursor
            row = self.row(index)
            self._painted[y] = (row, selected)
            strip = Strip([Segment(text, self.role_style(roles, selected))
                           for text, roles in row if text])
            fill = self.role_style("", True) if selected else base
            strip = strip.crop_extend(0, text_width, fill)
        if bar is not None:
            role = "scrollbar-thumb" if bar == THUMB else "scrollbar"
            strip = Strip.join([strip, Strip([Segment(bar, self.role_style(role, False))])])
        return strip

    # -- mouse -----------------------------------------------------------------------------
    def on_click(self, event: events.Click) -> None:
        at = event.get_content_offset(self)
        if at is None:  # on the padding
            return
        height = self.page_height
        if self._scrollbar(at.y, height) is not None and at.x >= self.size.width - 1:
            # on the scrollbar: jump there proportionally
            self.move_to(round(at.y * (self.row_count - 1) / max(1, height - 1)))
            return
        index = self.top + at.y
        if 0 <= index < self.row_count:
            if index == self.cursor:
                self.row_activated()
            else:
                self.move_to(index)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        event.prevent_default()
        self.move_cursor(WHEEL_STEP)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        event.prevent_default()
        self.move_cursor(-WHEEL_STEP)
