"""The main screen: header, heap chart, column titles with badges, tree/table, filter bar,
detail pane, legend and key bar. It owns the main keys, so other screens (log, help,
dialogs) never see them.

It renders the headless Session (memtrace_core.model); every repaint reads the model once,
under its lock, so the header, the chart and the rows show one state.
"""

from __future__ import annotations

import dataclasses
import time

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import var
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Input, Label

from memtrace_core.model import Metric, Session, Summary, format_bytes
from memtrace_core.model.metrics import N_COUNTERS
from memtrace_core.sampling import ESTIMATE_MARK, sample_bytes
from memtrace_tui.chart import HeapChart
from memtrace_tui.columns import ColumnBar, Layout, counts_metric, metric_label
from memtrace_tui.detail import DetailPane
from memtrace_tui.header import HeaderBar
from memtrace_tui.help_screen import HelpScreen
from memtrace_tui.key_bar import KeyBar
from memtrace_tui.legend import Legend
from memtrace_tui.log_screen import LogScreen
from memtrace_tui.messages import SelectionChanged
from memtrace_tui.process_picker import (
    ALL,
    PROGRAM,
    ProcessFigures,
    ProcessPicker,
    capture_figures,
    process_rows,
    view_command,
)
from memtrace_tui.selection_line import SelectionLine
from memtrace_tui.table_view import LocationsTable, table_titles
from memtrace_tui.thread_picker import ThreadPicker, thread_choices
from memtrace_tui.tree_text import frame_matches
from memtrace_tui.tree_view import CallTreeView

DETAIL_MIN_ROWS = 30  # below this the detail pane starts hidden: the tree keeps the room
TALL_CHART_ROWS = 40  # from this height on the chart gets a third row of bars
FILTER_DELAY = 0.12  # the filter applies this long after the last key typed…
FILTER_DELAY_MAX = 1.5  # …or longer when recounting the tree is slow (a big live tree)
SLOW_FILTER = 0.2  # a recount this slow is announced ("filtering…") before it starts
MATCH_SEARCH_NODES = 200_000  # n/N look at most this many nodes


class MainScreen(Screen[None]):
    """Navigable call tree of top allocators over a live or recorded session."""

    BINDINGS = [
        # priority: runs as soon as `/` arrives, so keys typed right after it reach the box
        Binding("slash", "filter", "Filter", priority=True),
        Binding("n", "next_match(1)", "Next match", show=False),
        Binding("N", "next_match(-1)", "Previous match", show=False),
        Binding("escape", "clear_filter", "Clear filter"),
        Binding("m", "cycle_metric", "Metric"),
        Binding("b", "mark", "Mark", show=False),
        Binding("B", "clear_mark", "Clear mark", show=False),
        Binding("left_square_bracket", "time(-1)", "Earlier", show=False),
        Binding("right_square_bracket", "time(1)", "Later", show=False),
        Binding("less_than_sign", "time(-10)", "Much earlier", show=False),
        Binding("greater_than_sign", "time(10)", "Much later", show=False),
        Binding("left_curly_bracket", "time_edge(0)", "Start", show=False),
        Binding("right_curly_bracket", "time_edge(1)", "End", show=False),
        Binding("M", "time_peak", "Peak", show=False),
        Binding("t", "pick_thread", "Thread"),
        Binding("P", "pick_process", "Process"),
        Binding("v", "switch_view", "Tree/table"),
        Binding("d", "toggle_detail", "Detail"),
        Binding("p,space", "pause", "Pause"),
        Binding("i", "toggle_internal", "Internal"),
        Binding("L", "show_log", "Log"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit_app", "Quit"),
    ]

    # Toggles: setting one repaints what it changes (its watcher), whoever sets it.
    paused: var[bool] = var(False, init=False)
    """The view holds still (the feed stops reading: a live program waits on its pipe)."""
    detail_shown: var[bool] = var(True, init=False, always_update=True)
    """The detail pane, or one selection line in its place (set on mount by the height)."""
    filter_open: var[bool] = var(False, init=False)
    """The filter box is shown (over the views' bottom line)."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._summary: Summary | None = None
        self._rss = 0
        self._filter_timer: Timer | None = None
        self._filter_cost = 0.0  # seconds the last filter change took (the model recounts)

    # -- layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        # widgets are kept as attributes: queries would search a modal screen when one is up
        self.header_bar = HeaderBar(id="header")
        self.chart = HeapChart(id="heap-chart")
        self.columns = ColumnBar(id="columns")
        self.switcher = ContentSwitcher(initial="tree", id="views")
        self.tree_view = CallTreeView(self.session, id="tree")
        self.table_view = LocationsTable(self.session, id="table")
        self.filter_box = Input(placeholder="function or file substring, live as you type",
                                id="filter-input")
        self.filter_bar = Horizontal(Label("filter /", id="filter-label"), self.filter_box,
                                     id="filter")
        self.filter_bar.display = False
        self.detail = DetailPane(id="detail")
        self.selection_line = SelectionLine(id="selection-line")
        self.tree_view.on_rebuilt = self.table_view.on_rebuilt = self._rows_rebuilt
        yield self.header_bar
        yield self.chart
        yield self.columns
        with Vertical(id="main"):
            with self.switcher:
                yield self.tree_view
                yield self.table_view
            # drawn over the views' bottom lines (see LinesView.set_occluded): showing or
            # hiding a pane does not resize the views, so it does not redraw every row
            with Vertical(id="panes"):
                yield self.filter_bar
                yield self.selection_line
                yield self.detail
        yield Legend(self.session.log_path, id="legend")
        yield KeyBar(id="keys")

    def on_mount(self) -> None:
        height = self.app.size.height
        self.detail_shown = height >= DETAIL_MIN_ROWS
        self.chart.styles.height = 4 if height >= TALL_CHART_ROWS else 3
        self.refresh_all()
        self.tree_view.focus()

    def on_resize(self, event: events.Resize) -> None:
        self.chart.styles.height = 4 if event.size.height >= TALL_CHART_ROWS else 3

    def _panes_changed(self) -> None:
        """The panes over the views' bottom lines were shown or hidden: the views keep
        their rows above them."""
        rows = sum(int(pane.styles.height.value) for pane in
                   (self.filter_bar, self.selection_line, self.detail) if pane.display)
        self.tree_view.set_occluded(rows)
        self.table_view.set_occluded(rows)

    # -- repaint ---------------------------------------------------------------------------
    @property
    def active_view(self) -> CallTreeView | LocationsTable:
        return self.table_view if self.switcher.current == "table" else self.tree_view

    def refresh_all(self) -> None:
        """Header, chart, column titles, the visible view and the detail pane, from one
        model state."""
        session = self.session
        with session.lock:
            self._summary = session.summary()
            history = session.reader.history
            self._rss = history[-1][2] if history else 0
            self.header_bar.show(self._summary, self._rss)
            self.chart.refresh_from(session)
            self.active_view.rebuild()
            self.refresh_columns()
            self._refresh_detail()

    def _rows_rebuilt(self) -> None:
        """A view rebuilt its rows (a key press, with the lock held): the header and the
        detail pane show the same moment of the model."""
        self._summary = self.session.summary()
        self.header_bar.show(self._summary, self._rss)
        self._refresh_detail()

    def tick(self) -> None:
        """The clock and status move on between model updates; the heap figures stay those
        of the last repaint, so the header never runs ahead of the tree (when paused, the
        header keeps showing what is being read)."""
        with self.session.lock:
            now = self.session.summary()
        last = self._summary
        if last is not None and not self.paused:
            now = dataclasses.replace(now, heap_bytes=last.heap_bytes,
                                      peak_bytes=last.peak_bytes,
                                      peak_time_s=last.peak_time_s, thread=last.thread)
        self.header_bar.show(now, self._rss)

    def refresh_columns(self) -> None:
        tree = self.session.tree
        view = self.active_view
        layout = Layout.for_width(view.size.width or self.app.size.width)
        metric = tree.metric
        if isinstance(view, LocationsTable):
            titles = table_titles(layout, metric, view.sort)
        else:
            titles = layout.titles(metric, metric_label(metric) + "↓", "own", "frame")
        badges = [(metric.value, "$text-primary"), (self._thread_label(), "$text-primary")]
        if tree.filter:
            badges.append((f"/{tree.filter}", "$text-accent"))
        if tree.show_internal:
            badges.append(("+internal", "$text-secondary"))
        if self.paused:
            badges.append(("PAUSED", "$text-warning"))
        if self._sampled():  # every number below is an estimate (the header says how)
            badges.append((f"{ESTIMATE_MARK} sampled", "$text-warning"))
        self.columns.show(titles, badges)

    def _sampled(self) -> bool:
        return bool(sample_bytes(self.session.reader.header or {}))

    def _thread_label(self) -> str:
        tree = self.session.tree
        if tree.thread is None:
            return "all threads"
        name = self.session.reader.threads.get(tree.thread, (0, "?"))[1]
        return f"thread #{tree.thread} {name}"

    def _refresh_detail(self) -> None:
        """The detail pane, or the one selection line standing in for it when hidden."""
        view = self.active_view
        zero = [0] * N_COUNTERS
        frame, own, total = None, zero, zero
        if isinstance(view, CallTreeView):
            node = view.selected
            shown = view.selected_numbers()
            if node is not None and shown is not None:
                # the row's numbers as shown (the model may have moved on since)
                frame, (own, total) = node.frame, shown
        elif view.selected is not None:
            loc = view.selected
            frame, own, total = loc.frame, loc.own, loc.total
        sampled = self._sampled()
        if self.detail.display:
            self.detail.show(frame, own, total, sampled)
        else:
            metric = self.session.tree.metric
            value = total[metric.sort_index]
            number = f"{value:,}" if counts_metric(metric) else format_bytes(value)
            if sampled:
                number = f"{ESTIMATE_MARK} {number}"
            self.selection_line.show(frame, f"{metric_label(metric)} {number}" if frame else "")

    def on_selection_changed(self, message: SelectionChanged) -> None:
        with self.session.lock:
            self._refresh_detail()

    # -- settings --------------------------------------------------------------------------
    def _change_model(self, change) -> None:
        with self.session.lock:
            change(self.session.tree)
        self.refresh_all()

    def action_cycle_metric(self) -> None:
        def cycle(tree) -> None:
            metric = tree.metric.next()
            if metric is Metric.SINCE_MARK and tree.mark is None:
                metric = metric.next()  # nothing to compare with before `b`
            tree.set_metric(metric)

        self._change_model(cycle)

    def action_mark(self) -> None:
        """`b`: in use now becomes the reference; the tree shows what changed since."""
        def mark(tree) -> None:
            tree.set_mark()
            tree.set_metric(Metric.SINCE_MARK)
            if not self.paused and not tree.busy:
                tree.update()

        self._change_model(mark)

    # -- the timeline (a capture read at once, or kept while the program runs) ----------
    def _timeline(self):
        return self.session.timeline or self.session.tree.timeline

    def _set_instant(self, index: int | None, peak: bool = False) -> None:
        timeline = self._timeline()
        if timeline is None or not timeline.points:
            return

        def move(tree) -> None:
            if peak:
                from memtrace_core.model.timeline import peak_instant

                tree.set_instant(timeline.peak or peak_instant(tree.reader))
            elif index is None or index >= len(timeline.points) - 1:
                tree.set_instant(None)  # the end: the capture as it finished
            else:
                tree.set_instant(timeline.points[max(0, index)])

        self._change_model(move)

    def _cursor_index(self) -> int:
        timeline = self._timeline()
        at = self.session.tree.instant
        if at is None:
            return len(timeline.points) - 1
        return timeline.index_at(at.t_us)

    def action_time(self, steps: int) -> None:
        """`[` `]` one instant earlier/later, `<` `>` ten."""
        if self._timeline() is None:
            return
        self._set_instant(self._cursor_index() + steps)

    def action_time_edge(self, end: int) -> None:
        """`{` the start, `}` the end (now)."""
        if self._timeline() is None:
            return
        self._set_instant(None if end else 0)

    def action_time_peak(self) -> None:
        """`M`: the peak (exact: every stack's figures at the high-water mark)."""
        self._set_instant(None, peak=True)

    def set_time_fraction(self, fraction: float) -> None:
        """A click on the chart: the instant at that share of the run."""
        timeline = self._timeline()
        if timeline is None or not timeline.points:
            return
        end = self.session.tree.figures.last_time_us
        self._set_instant(timeline.index_at(int(end * min(1.0, max(0.0, fraction)))))

    def action_clear_mark(self) -> None:
        def clear(tree) -> None:
            if tree.mark is None:
                return
            tree.clear_mark()
            if tree.metric is Metric.SINCE_MARK:
                tree.set_metric(Metric.IN_USE)
            if not self.paused and not tree.busy:
                tree.update()

        self._change_model(clear)

    def set_metric(self, metric: Metric) -> None:
        self._change_model(lambda tree: tree.set_metric(metric))

    def action_toggle_internal(self) -> None:
        self._change_model(lambda tree: tree.set_show_internal(not tree.show_internal))

    def action_switch_view(self) -> None:
        switcher = self.switcher
        switcher.current = "table" if switcher.current == "tree" else "tree"
        self.refresh_all()
        self.set_focus(self.active_view)  # now: a key typed right after `v` goes to it

    def action_pause(self) -> None:
        self.paused = not self.paused

    def watch_paused(self, paused: bool) -> None:
        controller = getattr(self.app, "controller", None)
        if controller is not None:
            controller.set_paused(paused)
        self.refresh_all()

    def action_toggle_detail(self) -> None:
        self.detail_shown = not self.detail_shown

    def watch_detail_shown(self, shown: bool) -> None:
        self.detail.display = shown
        self.selection_line.display = not shown
        self._panes_changed()
        with self.session.lock:
            self._refresh_detail()

    def action_pick_thread(self) -> None:
        with self.session.lock:
            tree = self.session.tree
            choices = thread_choices(dict(self.session.reader.threads), tree.thread_totals(),
                                     tree.metric.bytes_index)

        def chosen(value: int | None | bool) -> None:
            if value is not False:
                self._change_model(lambda tree: tree.set_thread(value))  # type: ignore[arg-type]

        self.app.push_screen(ThreadPicker(choices, self.session.tree.thread), chosen)

    def action_pick_process(self) -> None:
        """The program and its traced children (`live --follow-fork`): open one."""
        session = self.session
        with session.lock:
            summary = session.summary()
            program = ProcessFigures(summary.pid, summary.command, summary.status,
                                     summary.heap_bytes, summary.peak_bytes,
                                     session.tree.figures.total_allocated_bytes,
                                     session.tree.figures.total_allocations)
        children = {path: capture_figures(path) for path in session.child_captures()}

        def chosen(value: str | None) -> None:
            if value == ALL:
                self.open_child(session.child_prefix, all_processes=True)
            elif value and value != PROGRAM:
                self.open_child(value)

        self.app.push_screen(ProcessPicker(process_rows(program, children)), chosen)

    def open_child(self, path: str, all_processes: bool = False) -> None:
        """The child's capture in `memtrace view --follow` over this terminal (or all the
        processes' captures merged and followed); this view (still fed meanwhile) comes
        back when it quits."""
        import subprocess

        from textual.app import SuspendNotSupported

        command, env = view_command(path, all_processes)
        try:
            with self.app.suspend():
                subprocess.run(command, env=env)
        except SuspendNotSupported:
            self.notify(f"this terminal cannot hand over the screen: run "
                        f"`{' '.join(command[3:])}`", timeout=6)
        self.refresh_all()

    # -- filter ----------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.filter_box
        if self.focused is box:  # `/` typed inside the filter (a path): it is text
            box.insert_text_at_cursor("/")
            return
        if not self.filter_open:
            box.value = self.session.tree.filter
            box.cursor_position = len(box.value)
        self.filter_open = True
        self.set_focus(box)  # now, not later: the next keys in the queue must land here

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input is not self.filter_box or not self.filter_open:
            return
        if self._filter_timer is not None:
            self._filter_timer.stop()
        # typing costs one recount per pause, not one per key, however big the tree
        delay = min(FILTER_DELAY_MAX, max(FILTER_DELAY, 3 * self._filter_cost))
        self._filter_timer = self.set_timer(delay, self._apply_typed_filter)

    def _apply_typed_filter(self) -> None:
        self._filter_timer = None
        text = self.filter_box.value
        if self._filter_cost > SLOW_FILTER and text.strip().lower() != self.session.tree.filter:
            # a slow recount ahead: say so on screen first, then do it
            self.query_one("#filter-label", Label).update("filtering…")
            self.call_after_refresh(self.apply_filter, text)
        else:
            self.apply_filter(text)

    def apply_filter(self, text: str) -> None:
        self.query_one("#filter-label", Label).update("filter /")
        if text.strip().lower() == self.session.tree.filter:
            return
        start = time.perf_counter()
        self._change_model(lambda tree: tree.set_filter(text))
        self._filter_cost = time.perf_counter() - start

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input is not self.filter_box:
            return
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        self.apply_filter(event.value)
        self._close_filter_box()  # the cursor stays where it was: n/N go to the matches

    def watch_filter_open(self, shown: bool) -> None:
        self.filter_bar.display = shown
        self._panes_changed()

    def _close_filter_box(self) -> None:
        self.filter_open = False
        self.set_focus(self.active_view)

    def action_clear_filter(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        had_box = self.filter_open
        if had_box:
            self._close_filter_box()
        if self.session.tree.filter:
            self.apply_filter("")
        elif not had_box:
            self.app.bell()

    def action_next_match(self, direction: int) -> None:
        needle = self.session.tree.filter
        if not needle:
            return
        view = self.active_view
        if isinstance(view, LocationsTable):
            n = view.row_count
            for step in range(1, n + 1):
                i = (view.cursor + direction * step) % n
                if frame_matches(view.row_locations[i].frame, needle):
                    view.move_to(i)
                    return
            return
        with self.session.lock:
            target = _next_matching_node(view, needle, direction)
        if target is not None:
            view.select(target)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Escape is listed while there is a filter to clear; P while children are traced."""
        if action == "clear_filter":
            return bool(self.filter_open or self.session.tree.filter)
        if action == "pick_process":  # only children traced by `live --follow-fork`
            return self.session.child_prefix is not None
        return True

    def key_hints(self) -> list[tuple[str, str, str]]:
        """Extra footer items while typing a filter (the box's own keys)."""
        if self.focused is self.filter_box:
            return [("enter", "done", "enter")]
        return []

    # -- other screens ---------------------------------------------------------------------
    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_show_log(self) -> None:
        controller = getattr(self.app, "controller", None)
        path = controller.log_path if controller is not None else self.session.log_path
        self.app.push_screen(LogScreen(path))

    def action_quit_app(self) -> None:
        self.app.request_quit()


def _next_matching_node(view: CallTreeView, needle: str, direction: int):
    """The next node in display order (every node, open or not) whose frame matches."""
    tree = view.tree
    order = []
    stack = list(reversed(tree.children(tree.root)))
    start = time.perf_counter()
    while stack and len(order) < MATCH_SEARCH_NODES and time.perf_counter() - start < 0.25:
        node = stack.pop()
        order.append(node)
        stack.extend(reversed(tree.children(node)))
    if not order:
        return None
    try:
        at = order.index(view.selected) if view.selected is not None else -1
    except ValueError:
        at = -1
    n = len(order)
    for step in range(1, n + 1):
        i = (at + direction * step) % n if at >= 0 or direction > 0 else (n - step) % n
        if frame_matches(order[i].frame, needle):
            return order[i]
    return None
