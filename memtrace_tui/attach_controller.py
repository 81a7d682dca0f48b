"""Live mode's controller for an attached process (`memtrace live --attach PID`): the feed,
the target's end, detaching; LiveController's twin (live_controller.py) for a program that
memtrace did not start."""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from typing import Any


class AttachController:
    """The TUI's controller for an attached process: the feed, the target's end, detach.

    The feed starts before the app (start_feed) so the stream is drained while the agent
    starts; the app then plugs in through start()."""

    def __init__(self, attachment: Any, read_fd: int, session: Any, *,
                 tee_path: str | None, tee_sampled: bool = False) -> None:
        self.attachment = attachment
        self.read_fd = read_fd
        self.session = session
        self.tee_path = tee_path
        self.tee_sampled = tee_sampled  # a sampled stream: its tee is compressed harder
        self.log_path: str | None = None  # the target's output is not ours to show
        self.feed: Any = None
        self.app: Any = None
        self._detaching = threading.Event()

    def start_feed(self) -> None:
        from memtrace_core.model.feed import PipeFeed

        self.feed = PipeFeed(self.read_fd, self.session, tee_path=self.tee_path,
                             on_update=self._updated, tee_sampled=self.tee_sampled)
        self.feed.start()

    def _updated(self) -> None:
        if self.app is not None:
            from memtrace_tui.messages import ModelUpdated

            self.app.post_message(ModelUpdated())

    def start(self, app: Any) -> None:
        self.app = app
        if self.attachment.note:  # what the figures cannot show (tracer/pools.py)
            app.show_note(self.attachment.note)
        threading.Thread(target=self._watch, args=(app,), name="memtrace-watch",
                         daemon=True).start()

    def _watch(self, app: Any) -> None:
        """Report the target's exit (a pidfd turns readable) once the stream is drained."""
        from memtrace_tui.messages import ProgramExited

        pid = self.attachment.pid
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = -1
        while not self._detaching.is_set():
            if pidfd >= 0:
                if select.select([pidfd], [], [], 0.2)[0]:
                    break
            else:
                if not self.attachment.alive():
                    break
                time.sleep(0.2)
        if pidfd >= 0:
            os.close(pidfd)
        if self._detaching.is_set():
            return
        if self.feed is not None:
            self.feed.eof.wait(timeout=10)
        app.post_message(ProgramExited(None))

    def set_paused(self, paused: bool) -> None:
        if self.feed is not None:
            self.feed.paused = paused

    def detach(self) -> None:
        """Stop tracing in the target (an injection), drain the trailer; else close the
        channel."""
        self._detaching.set()
        with self.session.lock:
            self.session.detached = True
        clean = self.attachment.detach()
        if self.feed is not None:
            if clean:
                self.feed.eof.wait(timeout=5)
            self.feed.stop()
            self.feed.eof.wait(timeout=3)
        else:
            os.close(self.read_fd)

    def stop_program(self) -> None:
        """Detach cleanly, then ask the target to terminate (SIGTERM), as the user chose."""
        self.detach()
        try:
            os.kill(self.attachment.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
