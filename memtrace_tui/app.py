"""The memtrace Textual app: header, heap chart, call tree / table, detail pane, footer.

It renders a headless Session (memtrace_core.model). In live mode a controller owns the
program and the background feed; the feed posts merged ModelUpdated messages and the app
repaints from the model at most a few times a second.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path
from typing import Protocol

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, Footer, Input, Static

from memtrace_core.model import Metric, Session
from memtrace_core.model.metrics import N_COUNTERS
from memtrace_tui.chart import HeapChart
from memtrace_tui.detail import DetailPane
from memtrace_tui.header import HeaderBar, header_text
from memtrace_tui.help_screen import HelpScreen
from memtrace_tui.legend import Legend
from memtrace_tui.log_screen import LogScreen
from memtrace_tui.messages import ModelUpdated, ProgramExited, SelectionChanged
from memtrace_tui.quit_screen import QuitScreen
from memtrace_tui.table_view import LocationsTable, table_columns
from memtrace_tui.thread_picker import ThreadPicker, thread_choices
from memtrace_tui.tree_view import COLUMNS, CallTreeView


class Controller(Protocol):
    """What live mode plugs in: the program and the feed."""

    log_path: str | None

    def start(self, app: App) -> None: ...
    def set_paused(self, paused: bool) -> None: ...
    def stop_program(self) -> None: ...
    def detach(self) -> None: ...


class MemtraceApp(App[int]):
    """Navigable call tree of top allocators over a live or recorded session."""

    CSS_PATH = Path(__file__).with_name("memtrace.tcss")  # absolute: subclasses live elsewhere
    TITLE = "memtrace"
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("m", "cycle_metric", "Metric"),
        Binding("t", "pick_thread", "Thread"),
        Binding("i", "toggle_internal", "Internal"),
        Binding("v", "switch_view", "Tree/Table"),
        Binding("p,space", "pause", "Pause"),
        Binding("d", "toggle_detail", "Detail"),
        Binding("L", "show_log", "Log", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit_app", "Quit"),
    ]

    def __init__(self, session: Session, controller: Controller | None = None,
                 *, tick_seconds: float = 0.25) -> None:
        super().__init__()
        self.session = session
        self.controller = controller
        self.paused = False
        self.tick_seconds = tick_seconds
        self.tick_lateness: deque[float] = deque(maxlen=4096)  # seconds late per tick
        self._last_tick = 0.0
        self._seen_generation = -1
        self._exit_requested = False
        self._last_refresh = 0.0
        self._refresh_pending = False

    # -- layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        # widgets are kept as attributes: queries would search a modal screen when one is up
        self.header_bar = HeaderBar(id="header")
        self.chart = HeapChart(id="heap-chart")
        self.columns = Static(COLUMNS, id="columns")
        self.switcher = ContentSwitcher(initial="tree", id="views")
        self.tree_view = CallTreeView(self.session, id="tree")
        self.table_view = LocationsTable(self.session, id="table")
        self.filter_box = Input(placeholder="filter: function or file substring (enter "
                                "applies, empty clears, escape cancels)", id="filter")
        self.detail = DetailPane(id="detail")
        yield self.header_bar
        yield self.chart
        yield self.columns
        with Vertical(id="main"):
            with self.switcher:
                yield self.tree_view
                yield self.table_view
            yield self.filter_box
        yield self.detail
        yield Legend(self.session.log_path, id="legend")
        yield Footer()

    def on_mount(self) -> None:
        self.filter_box.display = False
        self.refresh_all()
        self.tree_view.focus()
        if self.controller is not None:
            # The feed thread decodes in long GIL-holding calls: hand the GIL over sooner so
            # key presses and timers on this thread are answered promptly.
            sys.setswitchinterval(0.001)
            self.controller.start(self)
            self._last_tick = time.monotonic()
            self.set_interval(self.tick_seconds, self._tick)
        else:  # a capture: only native names still arrive (symbolizer worker)
            self._polling = False
            self.set_interval(0.05, self._poll_model)

    # -- repaint ---------------------------------------------------------------------------
    @property
    def active_view(self) -> CallTreeView | LocationsTable:
        return self.table_view if self.switcher.current == "table" else self.tree_view

    def refresh_all(self) -> None:
        """Header, chart, the visible view and the detail pane, from one model state."""
        session = self.session
        self._last_refresh = time.monotonic()
        with session.lock:
            self._seen_generation = session.tree.generation
            self._refresh_header()
            self.chart.refresh_from(session)
            self.active_view.rebuild()
            self._refresh_detail()

    def _refresh_header(self) -> None:
        tree = self.session.tree
        thread = "all threads"
        if tree.thread is not None:
            name = self.session.reader.threads.get(tree.thread, (0, "?"))[1]
            thread = f"thread #{tree.thread} {name}"
        text = header_text(self.session.summary(), paused=self.paused,
                           metric=tree.metric.value, thread=thread, filt=tree.filter)
        self.header_bar.update(text, layout=False)  # fixed size: no relayout

    def _refresh_detail(self) -> None:
        pane = self.detail
        if not pane.display:
            return
        view = self.active_view
        zero = [0] * N_COUNTERS
        if isinstance(view, CallTreeView):
            node = view.selected
            if node is None:
                pane.show(None, zero, zero)
            else:
                pane.show(node.frame, node.own, node.total)
        else:
            loc = view.selected
            pane.show(loc.frame if loc else None, loc.own if loc else zero,
                      loc.total if loc else zero)

    def refresh_columns(self) -> None:
        view = self.active_view
        text = table_columns(view.sort) if isinstance(view, LocationsTable) else COLUMNS
        self.columns.update(text, layout=False)

    def _tick(self) -> None:
        now = time.monotonic()
        self.tick_lateness.append(max(0.0, now - self._last_tick - self.tick_seconds))
        self._last_tick = now
        self._refresh_header()  # plain reads of counters: no need to wait for the lock

    def _poll_model(self) -> None:
        """A capture's names arriving: renames in short steps (the UI stays responsive),
        a repaint at most every tick while they last, and one when they are done."""
        if self.paused or self._polling:
            return
        tree = self.session.tree
        with self.session.lock:
            generation = tree.generation
            if not tree.busy:
                tree.begin()
            done = tree.step(0.008)
            changed = tree.generation != generation
        if changed and (done or time.monotonic() - self._last_refresh >= self.tick_seconds):
            self.refresh_all()
        elif changed and not self._refresh_pending:
            self._refresh_pending = True
            self.set_timer(self.tick_seconds, self._deferred_refresh)
        if not done:
            self._polling = True
            self.set_timer(0.001, self._poll_again)

    def _poll_again(self) -> None:
        self._polling = False
        self._poll_model()

    # -- messages --------------------------------------------------------------------------
    def on_model_updated(self, message: ModelUpdated) -> None:
        if self._exit_requested:
            return  # late messages from the feed while the app closes
        if self.paused:
            self._refresh_header()
            return
        # repaint at most every tick: a flood of updates costs one repaint per tick
        wait = self._last_refresh + self.tick_seconds - time.monotonic()
        if wait <= 0:
            self.refresh_all()
        elif not self._refresh_pending:
            self._refresh_pending = True
            self.set_timer(wait, self._deferred_refresh)

    def _deferred_refresh(self) -> None:
        self._refresh_pending = False
        if not self._exit_requested and not self.paused:
            self.refresh_all()

    def on_program_exited(self, message: ProgramExited) -> None:
        with self.session.lock:
            self.session.mark_exited(message.exit_code)
        self.refresh_all()

    def on_selection_changed(self, message: SelectionChanged) -> None:
        with self.session.lock:
            self._refresh_detail()

    # -- actions ---------------------------------------------------------------------------
    def _change_model(self, change) -> None:
        with self.session.lock:
            change(self.session.tree)
        self.refresh_all()

    def action_cycle_metric(self) -> None:
        self._change_model(lambda tree: tree.set_metric(tree.metric.next()))

    def set_metric(self, metric: Metric) -> None:
        self._change_model(lambda tree: tree.set_metric(metric))

    def action_toggle_internal(self) -> None:
        self._change_model(lambda tree: tree.set_show_internal(not tree.show_internal))

    def action_switch_view(self) -> None:
        switcher = self.switcher
        switcher.current = "table" if switcher.current == "tree" else "tree"
        self.refresh_columns()
        self.refresh_all()
        self.active_view.focus()

    def action_pause(self) -> None:
        self.paused = not self.paused
        if self.controller is not None:
            self.controller.set_paused(self.paused)
        if not self.paused:
            self.refresh_all()
        else:
            with self.session.lock:
                self._refresh_header()

    def action_toggle_detail(self) -> None:
        pane = self.detail
        pane.display = not pane.display
        with self.session.lock:
            self._refresh_detail()

    def action_filter(self) -> None:
        box = self.filter_box
        box.value = self.session.tree.filter
        box.display = True
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.input.display = False
        text = event.value
        self._change_model(lambda tree: tree.set_filter(text))
        self.active_view.focus()

    def on_key(self, event) -> None:
        box = self.filter_box
        if event.key == "escape" and box.display:
            box.display = False
            self.active_view.focus()
            event.stop()

    def action_pick_thread(self) -> None:
        with self.session.lock:
            tree = self.session.tree
            choices = thread_choices(dict(self.session.reader.threads), tree.thread_totals(),
                                     tree.metric.bytes_index)

        def chosen(value: int | None | bool) -> None:
            if value is not False:
                self._change_model(lambda tree: tree.set_thread(value))  # type: ignore[arg-type]

        self.push_screen(ThreadPicker(choices, self.session.tree.thread), chosen)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_show_log(self) -> None:
        path = self.controller.log_path if self.controller is not None else None
        self.push_screen(LogScreen(path))

    def exit(self, *args, **kwargs) -> None:
        self._exit_requested = True
        super().exit(*args, **kwargs)

    def action_quit_app(self) -> None:
        session = self.session
        if self.controller is None or not session.running or session.detached:
            self.exit(0)
            return

        def chosen(what: str | None) -> None:
            if what == "stop":
                self.controller.stop_program()
                self.exit(0)
            elif what == "detach":
                self.controller.detach()
                self.exit(0)

        self.push_screen(QuitScreen(), chosen)
