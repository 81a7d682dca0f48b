"""The flat top-locations table (second view): own and total numbers per frame."""

from __future__ import annotations

from textual.binding import Binding
from textual.reactive import var

from memtrace_core.model import Location, Metric, Session
from memtrace_core.model.metrics import LOCATION_SORTS, NATIVE_LOCATION_SORTS
from memtrace_tui.columns import Layout, counts_metric, grand_total
from memtrace_tui.kinds import location
from memtrace_tui.lines_view import KIND_ROLES, LinesView, Row
from memtrace_tui.messages import SelectionChanged
from memtrace_tui.tree_text import empty_message, frame_matches, split_matches

# --native: "user" = own (user code), the bytes of the stacks whose innermost user frame
# (Python, or the user's own native library) is this location; the default there, so
# Python lines come first rather than the allocator's internals
SORTS, NATIVE_SORTS = LOCATION_SORTS, NATIVE_LOCATION_SORTS


def table_titles(layout: Layout, metric: Metric, sort: str) -> str:
    """Column titles with the sort column marked (`own↓`, `total↓`, `count↓`, `user own↓`)."""
    arrow = {key: ("↓" if sort == key else "") for key in NATIVE_SORTS}
    first = "user own↓" if sort == "user" else "own" + arrow["own"]
    text = layout.titles(metric, first, "total" + arrow["total"], "location")
    if layout.wide:
        other = "bytes" if counts_metric(metric) else "count"
        text = text.replace(f" {other:>10}", f" {other + arrow['count']:>10}", 1)
    return text


class LocationsTable(LinesView):
    """Top locations sorted by own, total or count (`s` cycles)."""

    BINDINGS = [
        Binding("s", "cycle_sort", "Sort"),
    ]

    sort: var[str] = var("own", init=False)
    """The column rows are sorted by (`s` cycles; `user` with --native); setting it re-sorts."""

    def __init__(self, session: Session, limit: int = 500, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.lock = session.lock
        self.limit = limit
        self.set_reactive(LocationsTable.sort, "user" if session.tree.native else "own")
        self.row_locations: list[Location] = []
        self.selected: Location | None = None
        self.on_rebuilt = lambda: None  # the screen's: show the header of this moment
        self._grand = 0

    def rebuild(self) -> None:
        """Recompute rows (call with the session lock held)."""
        tree = self.session.tree
        self._grand = grand_total(tree)
        locs = tree.top_locations(self.sort, self.limit)
        cursor = 0
        if self.selected is not None:
            for i, loc in enumerate(locs):
                if loc.frame == self.selected.frame:
                    cursor = i
                    break
        self.row_locations = locs
        self.selected = locs[cursor] if locs else None
        self.set_row_count(len(locs), cursor)

    def format_row(self, index: int) -> Row:
        loc = self.row_locations[index]
        tree = self.session.tree
        layout = Layout.for_width(self.size.width)
        f = loc.frame
        kind = KIND_ROLES.get(f.kind, "python")
        needle = tree.filter
        # own first: the table is about where memory is allocated
        pieces: list[tuple[str, str]] = [
            (layout.numbers(tree.metric, loc.user if self.sort == "user" else loc.own,
                            loc.total, self._grand, share=loc.total,
                            span_s=tree.growth_span_s), "number"),
            (f.kind.mark + " ", kind)]
        pieces += split_matches(f.function, needle, kind)
        where = location(f)
        if where:
            pieces.append(("  ", "dim"))
            pieces += split_matches(where, needle if frame_matches(f, needle) else "", "dim")
        return tuple(pieces)

    def empty_text(self) -> str:
        return empty_message(self.session.tree)

    def refresh_from_model(self) -> None:
        with self.session.lock:
            self.rebuild()
            self.on_rebuilt()

    def cursor_moved(self) -> None:
        if self.row_locations:
            self.selected = self.row_locations[self.cursor]
            self.post_message(SelectionChanged())

    def action_cycle_sort(self) -> None:
        sorts = NATIVE_SORTS if self.session.tree.native else SORTS
        self.sort = sorts[(sorts.index(self.sort) + 1) % len(sorts)]

    def watch_sort(self) -> None:
        self.refresh_from_model()
        self.screen.refresh_columns()
