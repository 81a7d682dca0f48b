"""A list of rows with a cursor that is always on screen: the base of the tree and table views.

Rows are formatted on demand, only the visible ones (a tree of 100,000 rows costs what a
screenful costs). A row is a tuple of (text, roles) pieces; roles are space-separated
component-class names without the `lines--` prefix ("number", "python match", …), so every
colour comes from TCSS and the theme. The view scrolls itself: after every key, click,
wheel step and model update the cursor row is inside the window, by construction. The
scrollbar is drawn in the last column (track and thumb as distinct glyphs, so it reads
without colour too) only when the rows do not fit.

Panes drawn over the view's bottom lines (the detail pane, the filter box) are announced with
`set_occluded(rows)`: the window shrinks by that many lines, but the view keeps its size, so
showing or hiding a pane repaints only the lines it uncovers, not every row (a relayout that
resized the view redrew the whole screen: `d` cost a frame and more under load).
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
        self.occluded = 0  # bottom lines covered by panes drawn over the view
        # screen line -> what it shows: (row, selected, scrollbar glyph), None when blank
        self._painted: dict[int, tuple[Row, bool, str | None] | None] = {}
        # rows formatted since the last set_row_count, with the width they were made for
        self._formatted: dict[int, tuple[int, Row]] = {}
        self._role_styles: dict[tuple[str, bool], Style] = {}
        # row index -> (row, selected, width, strip): drawn rows, reused when the view is
        # redrawn without their content changing (a relayout, e.g. `d`, redraws every line)
        self._strips: dict[int, tuple[Row, bool, int, Strip]] = {}
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

    def window_shown(self) -> None:
        """Hook: the window moved to other rows (after the cursor and selection did)."""

    # -- rows and scrolling ----------------------------------------------------------------
    @property
    def page_height(self) -> int:
        """Lines of rows in view: the view's height less the lines panes cover."""
        return max(1, self.size.height - self.occluded)

    def set_occluded(self, rows: int) -> None:
        """Panes now cover the bottom `rows` lines: keep the cursor above them and repaint
        only the lines that change (those uncovered, and the scrollbar's)."""
        if rows == self.occluded:
            return
        self.occluded = rows
        if self._clamp_top():
            self.refresh()
            self._painted.clear()
        else:
            self._repaint_changed()

    def row(self, index: int) -> Row:
        """Row `index` formatted for the width it is drawn at (columns and indentation
        follow the width: a row made before a resize is made again)."""
        width = self.size.width
        got = self._formatted.get(index)
        if got is None or got[0] != width:
            with self.lock:
                got = self._formatted[index] = (width, self.format_row(index))
        return got[1]

    def set_row_count(self, count: int, cursor: int) -> None:
        """New rows (their content may have changed too); repaint the lines that differ."""
        self.row_count = count
        self.cursor = max(0, min(cursor, count - 1)) if count else 0
        self._formatted.clear()
        self._clamp_top()
        self._prune_strips()
        self._repaint_changed()

    def _prune_strips(self) -> None:
        """Keep the drawn rows near the window only (the cache stays a few screens big)."""
        if len(self._strips) > 4 * self.page_height:
            window = range(self.top - self.page_height, self.top + 2 * self.page_height)
            self._strips = {i: v for i, v in self._strips.items() if i in window}

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
        """Refresh only screen lines whose row, cursor state or scrollbar glyph changed (a
        full repaint of a big tree would cost a whole frame of the UI thread)."""
        height = self.page_height
        for index in self.visible_range():
            self.row(index)  # formatted now, under the caller's lock: one consistent state
        stale = [y for y in range(max(height, self.size.height))
                 if self._painted.get(y) != self._shown_at(y, height)]
        if len(stale) > height // 2:  # the window moved: one refresh for everything
            self.refresh()
            self._painted.clear()
            return
        for y in stale:
            self.refresh_line(y)

    def _shown_at(self, y: int, height: int) -> tuple[Row, bool, str | None] | None:
        """What screen line y should show: the row, whether it is selected, the scrollbar
        glyph (None for a blank line: past the rows, or under a pane)."""
        index = self.top + y
        if y >= height or index >= self.row_count:
            return None
        return self.row(index), index == self.cursor, self._scrollbar(y, height)

    def refresh_line(self, y: int) -> None:
        """Repaint screen line y (relative to the top of the view)."""
        if 0 <= y < self.size.height:
            self.refresh(Region(0, y, self.outer_size.width, 1))

    def move_cursor(self, delta: int) -> None:
        if not self.row_count:
            return
        self.move_to(max(0, min(self.row_count - 1, self.cursor + delta)))

    def move_to(self, index: int) -> None:
        """Put the cursor on row `index` and keep it in the window."""
        old = self.cursor
        self.cursor = max(0, min(index, self.row_count - 1)) if self.row_count else 0
        moved = self._clamp_top()
        if moved:
            self.refresh()
            self._painted.clear()
        elif old != self.cursor:
            self.refresh_line(old - self.top)
            self.refresh_line(self.cursor - self.top)
        if old != self.cursor:
            self.cursor_moved()
        if moved:
            self.window_shown()

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
        self._strips.clear()
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
        base = self.role_style("", False)  # the widget's own style, cached until it changes
        if y >= height:  # under a pane
            self._painted[y] = None
            return Strip.blank(width, base)
        bar = self._scrollbar(y, height)
        text_width = width - 1 if bar is not None else width
        index = self.top + y
        if index >= self.row_count:
            self._painted[y] = None
            strip = Strip.blank(text_width, base)
            if not self.row_count and y == 0 and (note := self.empty_text()):
                self._painted[y] = ((note, "dim"),), False, bar  # repainted when rows come
                strip = Strip([Segment(note, self.role_style("dim", False))]).crop_extend(
                    0, text_width, base)
        else:
            selected = index == self.cursor
            row = self.row(index)
            self._painted[y] = (row, selected, bar)
            cached = self._strips.get(index)
            if (cached is not None and cached[1] == selected and cached[2] == text_width
                    and cached[0] == row):
                strip = cached[3]
            else:
                strip = Strip([Segment(text, self.role_style(roles, selected))
                               for text, roles in row if text])
                fill = self.role_style("", True) if selected else base
                strip = strip.crop_extend(0, text_width, fill)
                self._strips[index] = (row, selected, text_width, strip)
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
        if at.y >= height:  # under a pane
            return
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
