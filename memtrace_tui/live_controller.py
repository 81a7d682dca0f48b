"""Live mode's controller: the traced program, its pipe feed and its end, for the app.

The program runs in its own session with stdout/stderr in a log file (so it never garbles
the screen); the feed thread reads the stream; a waiter thread reports the exit once the
stream is drained, so the final state on screen is complete.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading

from memtrace_core.model import Session
from memtrace_core.model.feed import PipeFeed
from memtrace_core.tracer.pools import NOTE_PREFIX
from memtrace_tui.messages import ModelUpdated, ProgramExited


class LiveController:
    """Owns the child process and the feed; the app calls start/stop/detach/set_paused."""

    def __init__(self, proc: subprocess.Popen, read_fd: int, session: Session, *,
                 log_path: str | None, tee_path: str | None = None,
                 tee_sampled: bool = False) -> None:
        self.proc = proc
        self.read_fd = read_fd
        self.session = session
        self.log_path = log_path
        self.tee_path = tee_path
        self.tee_sampled = tee_sampled  # a sampled stream: its tee is compressed harder
        self.feed: PipeFeed | None = None

    def start(self, app) -> None:
        self.feed = PipeFeed(self.read_fd, self.session, tee_path=self.tee_path,
                             on_update=lambda: app.post_message(ModelUpdated()),
                             tee_sampled=self.tee_sampled)
        self.feed.start()
        threading.Thread(target=self._wait, args=(app,), name="memtrace-wait",
                         daemon=True).start()

    def _wait(self, app) -> None:
        """Report the exit at once (the stream's tail is still being read: the feed
        repaints when it has it), with the runner's notes from the end of the log."""
        code = self.proc.wait()
        app.post_message(ProgramExited(code, runner_notes(self.log_path)))

    def set_paused(self, paused: bool) -> None:
        if self.feed is not None:
            self.feed.paused = paused

    def stop_program(self) -> None:
        """SIGTERM, then SIGKILL after 3 s."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            except ProcessLookupError:
                pass
        if self.feed is not None:
            self.feed.eof.wait(timeout=3)
            self.feed.stop()

    def detach(self) -> None:
        """Close our end of the pipe: the tracer stops and restores its hooks; the program
        runs on untraced."""
        with self.session.lock:
            self.session.detached = True
        if self.feed is not None:
            self.feed.stop()
            self.feed.eof.wait(timeout=3)
        else:
            os.close(self.read_fd)


NOTES_TAIL_BYTES = 16 * 1024


def runner_notes(log_path: str | None) -> tuple[str, ...]:
    """The runner's notes, which it writes to the program's stderr as the program ends (after
    the program's own output): the lines of the log's tail that start with NOTE_PREFIX."""
    if not log_path:
        return ()
    try:
        with open(log_path, "rb") as log:
            log.seek(max(0, os.fstat(log.fileno()).st_size - NOTES_TAIL_BYTES))
            tail = log.read().decode("utf-8", "replace")
    except OSError:
        return ()
    return tuple(line[len(NOTE_PREFIX):] for line in tail.splitlines()
                 if line.startswith(NOTE_PREFIX))
