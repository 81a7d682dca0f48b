"""The memtrace Textual app: the main screen over a live or recorded session, and quitting.

In live mode a controller owns the program and the background feed; the feed posts merged
ModelUpdated messages and the main screen repaints from the model at most a few times a
second. Every way of quitting (q, Ctrl+Q, Ctrl+C, the command palette's Quit) goes through
`request_quit`, which asks what to do with a program that still runs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from memtrace_core.model import Metric, Session
from memtrace_tui.collector import CollectorPacing
from memtrace_tui.command_palette import SafeCommandPalette
from memtrace_tui.main_screen import MainScreen
from memtrace_tui.messages import ModelUpdated, ProgramExited
from memtrace_tui.palette import kind_colours, kind_css
from memtrace_tui.quit_screen import QuitScreen

COLLECTOR_CHECK_S = 0.5  # how often the app looks whether a full collection is due
TICK_HISTORY = 1024  # tick lateness samples kept (benchmarks): a bounded window
NOTE_SECONDS = 60  # a note at the program's end stays this long (it explains the figures)


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
    CSS = kind_css()
    TITLE = "memtrace"
    BINDINGS = [
        Binding("ctrl+q", "request_quit", "Quit", show=False, priority=True),
        Binding("ctrl+c", "request_quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, session: Session, controller: Controller | None = None,
                 *, tick_seconds: float = 0.25) -> None:
        super().__init__()
        self.session = session
        self.controller = controller
        self.tick_seconds = tick_seconds
        self.tick_lateness: list[float] = []  # seconds late per UI tick (benchmarks)
        self._last_tick = 0.0
        self._exit_requested = False
        self._last_refresh = 0.0
        self._refresh_pending = False
        self._polling = False
        self.main = MainScreen(session)
        self.collector = CollectorPacing()

    def get_default_screen(self) -> MainScreen:
        return self.main

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """The frame-kind colours for the current theme and terminal (a theme's own `frame-*`
        variables win)."""
        theme = self.current_theme
        return kind_colours(theme, theme.to_color_system().generate(), self.console.color_system)

    def on_mount(self) -> None:
        # What exists now lives as long as the app: out of the collector's full passes,
        # which run when input is quiet, not on a key press (memtrace_tui/collector.py)
        self.collector.start()
        self.set_interval(COLLECTOR_CHECK_S, self.collector.maybe_collect)
        if self.console.color_system in ("standard", "windows"):
            # 8/16 colours: a translucent cursor row would round to the background
            self.add_class("-few-colours")
        if self.controller is not None:
            # The feed thread decodes in long GIL-holding calls: hand the GIL over sooner so
            # key presses and timers on this thread are answered promptly.
            sys.setswitchinterval(0.001)
            self.controller.start(self)
            self._last_tick = time.monotonic()
            self.set_interval(self.tick_seconds, self._tick)
        else:  # a capture: only native names still arrive (symbolizer worker)
            self.set_interval(0.05, self._poll_model)

    def on_unmount(self) -> None:
        self.collector.stop()  # the process goes on (tests, embedding): collect as usual

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self.collector.input()  # no full collection while keys come
        await super().on_event(event)

    # -- compatibility: the main screen does the work --------------------------------------
    @property
    def paused(self) -> bool:
        return self.main.paused

    def refresh_all(self) -> None:
        self.main.refresh_all()

    def set_metric(self, metric: Metric) -> None:
        self.main.set_metric(metric)

    # -- model updates ---------------------------------------------------------------------
    def _tick(self) -> None:
        now = time.monotonic()
        self.tick_lateness.append(max(0.0, now - self._last_tick - self.tick_seconds))
        del self.tick_lateness[:-TICK_HISTORY]
        self._last_tick = now
        self.main.tick()

    def _poll_model(self) -> None:
        """A capture's names arriving: renames in short steps (the UI stays responsive),
        a repaint at most every tick while they last, and one when they are done."""
        if self.main.paused or self._polling:
            return
        tree = self.session.tree
        with self.session.lock:
            generation = tree.generation
            if not tree.busy:
                tree.begin()
            done = tree.step(0.008)
            changed = tree.generation != generation
        if changed and (done or time.monotonic() - self._last_refresh >= self.tick_seconds):
            self._repaint()
        elif changed and not self._refresh_pending:
            self._refresh_pending = True
            self.set_timer(self.tick_seconds, self._deferred_refresh)
        if not done:
            self._polling = True
            self.set_timer(0.001, self._poll_again)

    def _poll_again(self) -> None:
        self._polling = False
        self._poll_model()

    def _repaint(self) -> None:
        self._last_refresh = time.monotonic()
        self.main.refresh_all()

    def on_model_updated(self, message: ModelUpdated) -> None:
        if self._exit_requested:
            return  # late messages from the feed while the app closes
        if self.main.paused:
            return  # the tick keeps the header current
        # repaint at most every tick: a flood of updates costs one repaint per tick
        wait = self._last_refresh + self.tick_seconds - time.monotonic()
        if wait <= 0:
            self._repaint()
        elif not self._refresh_pending:
            self._refresh_pending = True
            self.set_timer(wait, self._deferred_refresh)

    def _deferred_refresh(self) -> None:
        self._refresh_pending = False
        if not self._exit_requested and not self.main.paused:
            self._repaint()

    def on_program_exited(self, message: ProgramExited) -> None:
        with self.session.lock:
            self.session.mark_exited(message.exit_code)
        if self._exit_requested:
            return
        self._repaint()
        for note in message.notes:  # what the figures on screen do not show (runner.py)
            self.show_note(note)
        if self.screen_stack and isinstance(self.screen, QuitScreen):
            self.screen.dismiss("cancel")  # nothing left to ask about

    def show_note(self, note: str) -> None:
        """memtrace's note about the figures (tracer/pools.py): a warning that stays a while."""
        self.notify(note, title="memtrace", severity="warning", timeout=NOTE_SECONDS)

    # -- command palette -------------------------------------------------------------------
    def action_command_palette(self) -> None:
        if self.use_command_palette and not SafeCommandPalette.is_open(self):
            self.push_screen(SafeCommandPalette(id="--command-palette"))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's commands, with Quit saying that it asks first."""
        for command in super().get_system_commands(screen):
            if command.title == "Quit":
                command = SystemCommand("Quit", "Quit memtrace (asks first while the "
                                        "program runs)", command.callback)
            yield command

    # -- quitting --------------------------------------------------------------------------
    def exit(self, *args, **kwargs) -> None:
        self._exit_requested = True
        super().exit(*args, **kwargs)

    async def action_quit(self) -> None:
        """The command palette's Quit: the same question as `q`."""
        self.request_quit()

    def action_help_quit(self) -> None:
        self.request_quit()

    def action_request_quit(self) -> None:
        self.request_quit()

    def request_quit(self) -> None:
        """Quit now when nothing runs; otherwise ask (once: not over an open dialog)."""
        session = self.session
        if (self.controller is None or not session.running or session.detached
                or not getattr(self.controller, "owns_program", True)):
            if self.controller is not None and not getattr(self.controller, "owns_program",
                                                           True):
                self.controller.detach()  # a follower: stop reading, nothing else
            self.exit(0)
            return
        if isinstance(self.screen, QuitScreen):
            return

        def chosen(what: str | None) -> None:
            if what == "stop":
                self.controller.stop_program()
                self.exit(0)
            elif what == "detach":
                self.controller.detach()
                self.exit(0)

        self.push_screen(QuitScreen(), chosen)
