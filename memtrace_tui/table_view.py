"""The flat top-locations table (second view): own/total bytes and count per frame."""

from __future__ import annotations

from rich.style import Style
from textual.binding import Binding

from memtrace_core.model import Location, Session, format_bytes
from memtrace_tui.kinds import KIND_STYLES, location
from memtrace_tui.lines_view import LinesView
from memtrace_tui.messages import SelectionChanged

NUM = Style(color="#c0c0c0")
DIM = Style(color="#808080")
SORTS = ("own", "total", "count")


def table_columns(sort: str) -> str:
    """Column titles with the sort column marked."""
    names = {"own": "own", "total": "total", "count": "count"}
    names[sort] = names[sort] + "↓"
    return f"{names['own']:>10} {names['total']:>10} {'%':>6} {names['count']:>9}  location"


class LocationsTable(LinesView):
    """Top locations sorted by own bytes, total bytes or count (`s` cycles)."""

    BINDINGS = [
        Binding("s", "cycle_sort", "Sort"),
    ]

    def __init__(self, session: Session, limit: int = 500, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.limit = limit
        self.sort = "own"
        self.row_locations: list[Location] = []
        self.selected: Location | None = None

    def rebuild(self) -> None:
        """Recompute rows (call with the session lock held)."""
        tree = self.session.tree
        m = tree.metric
        grand = tree.root.total[m.bytes_index] or 1
        locs = tree.top_locations(self.sort, self.limit)
        rows = []
        for loc in locs:
            f = loc.frame
            own, total = loc.own[m.bytes_index], loc.total[m.bytes_index]
            rows.append([
                (f"{format_bytes(own):>10} {format_bytes(total):>10} "
                 f"{100.0 * own / grand:5.1f}% {loc.own[m.count_index]:>9}  ", NUM),
                (f.kind.mark + " ", KIND_STYLES[f.kind]),
                (f.function, KIND_STYLES[f.kind]),
                (f"  {location(f)}", DIM),
            ])
        cursor = 0
        if self.selected is not None:
            for i, loc in enumerate(locs):
                if loc.frame == self.selected.frame:
                    cursor = i
                    break
        self.row_locations = locs
        self.selected = locs[cursor] if locs else None
        self.set_rows(rows, cursor)

    def refresh_from_model(self) -> None:
        with self.session.lock:
            self.rebuild()

    def cursor_moved(self) -> None:
        if self.row_locations:
            self.selected = self.row_locations[self.cursor]
            self.post_message(SelectionChanged())

    def action_move(self, delta: int) -> None:
        self.move_cursor(delta)

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.refresh_from_model()
        self.app.refresh_columns()
