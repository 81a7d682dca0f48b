"""Background reading of a live stream: pipe -> tee file -> reader -> model, off the UI thread.

The thread polls the pipe (so it can be told to stop without closing an fd another thread
is blocked on), feeds small chunks (the reader holds the GIL while decoding: small chunks
keep the UI thread's turns short), and applies the model update a few times a second unless
the view is paused; then it calls `on_update`, which the app turns into one merged message.

An update runs in steps of a few milliseconds with the session lock released in between,
so the UI thread gets its turns during a burst of new stacks; the reader is not fed until
the update is done, so every number the UI can see belongs to one moment of the stream
(the tree's root equals the header's figures). After the end of the stream the thread
stays until the symbolizer has answered every address (names keep arriving).
Stopping the feed closes the read end: the tracer sees the closed pipe and stops cleanly.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from memtrace_core.capture import CaptureWriter
from memtrace_core.model.session import Session
from memtrace_core.reader.pipe import PipeSource

CHUNK = 1024 * 1024  # decoding 1 MiB takes ~1 ms; fewer wake-ups = fewer GIL hand-offs
PIPE_SIZE = 1024 * 1024
UPDATE_BUDGET_S = 0.005  # longest hold of the session lock by one step of an update
NAMES_POLL_S = 0.1  # after the end of the stream: how often to take arriving names


def enlarge_pipe(fd: int, size: int = PIPE_SIZE) -> int:
    """Grow a pipe's kernel buffer (Linux F_SETPIPE_SZ) so the traced program's writer
    rarely waits for this process; returns the size in effect."""
    import fcntl

    setsz = getattr(fcntl, "F_SETPIPE_SZ", 1031)
    getsz = getattr(fcntl, "F_GETPIPE_SZ", 1032)
    for want in (size, size // 2, size // 4):
        try:
            return fcntl.fcntl(fd, setsz, want)
        except OSError:  # above /proc/sys/fs/pipe-max-size for unprivileged users
            continue
    try:
        return fcntl.fcntl(fd, getsz)
    except OSError:
        return 0


class PipeFeed(threading.Thread):
    """Reads fd until EOF or stop(); the session is updated under its lock."""

    def __init__(self, fd: int, session: Session, *, tee_path: str | None = None,
                 on_update: Callable[[], None] = lambda: None, interval: float = 0.25,
                 tee_sampled: bool = False) -> None:
        """tee_sampled: the stream is a sampled capture's (its tee is compressed harder)."""
        super().__init__(name="memtrace-feed", daemon=True)
        self.fd = fd
        self.session = session
        self.tee = CaptureWriter.create(tee_path, sampled=tee_sampled) if tee_path else None
        self.on_update = on_update
        self.interval = interval
        self.paused = False
        self.eof = threading.Event()
        self._stop_event = threading.Event()
        self.update_seconds: deque[float] = deque(maxlen=4096)  # step durations (benchmarks)
        self.updates_done: deque[tuple[float, int]] = deque(maxlen=4096)  # (end, stacks)
        # seconds from a chunk reaching the reader to the end of the update holding it
        self.lag_seconds: deque[float] = deque(maxlen=4096)
        self._fed_at: list[float] = []  # chunks fed since the last update began
        self._last_update = 0.0
        self._last_notify = 0.0
        self._broken = False

    def stop(self) -> None:
        """Stop reading and close the pipe (the tracer then stops, the program runs on)."""
        self._stop_event.set()

    def _open_source(self) -> None:
        self._source = PipeSource(self.fd, CHUNK)

    def _next(self) -> bytes | None:
        """The stream's next bytes: b"" when none came within a short wait, None at its end."""
        return self._source.next()

    def _close_source(self) -> None:
        self._source.close()

    def run(self) -> None:
        session = self.session
        self._open_source()
        try:
            while not self._stop_event.is_set():
                try:
                    data = self._next()
                except Exception as exc:  # noqa: BLE001 - unreadable source: say so, stop
                    session.error = str(exc).splitlines()[0] if str(exc) else repr(exc)
                    break
                if data is None:
                    break
                if not data:
                    if self.tee is not None:
                        self.tee.poll()  # the writer's flush policy, while the stream idles
                    self._maybe_update()
                    continue
                if self.tee is not None:
                    self.tee.write(data)
                with session.lock:
                    try:
                        session.reader.feed(data)
                    except Exception as exc:  # corrupt stream: say so, stop tracing
                        session.error = str(exc).splitlines()[0] if str(exc) else repr(exc)
                        break
                if len(self._fed_at) < 1024:
                    self._fed_at.append(time.monotonic())
                self._maybe_update()
        finally:
            if not self._stop_event.is_set():
                with session.lock:
                    try:
                        session.reader.finish()
                    except Exception:  # noqa: BLE001 - a truncated tail is not fatal here
                        pass
            self._close_source()
            if self.tee is not None:
                tee, self.tee = self.tee, None
                tee.close()
            self._update(force=True)
            self.eof.set()
            while (session.tree.pending_names() and not self._stop_event.is_set()
                   and not self._broken):
                self._stop_event.wait(NAMES_POLL_S)
                self._update()

    def _maybe_update(self) -> None:
        """Update every `interval`."""
        if time.monotonic() - self._last_update >= self.interval:
            self._update()

    def _update(self, force: bool = False) -> None:
        """One whole model update, in steps of UPDATE_BUDGET_S with the lock released in
        between; then the UI is told."""
        self._last_update = time.monotonic()
        if (self.paused and not force) or self._broken:
            return
        if self.tee is not None:
            self.tee.flush()
        session = self.session
        tree = session.tree
        n = 0
        fed, self._fed_at = self._fed_at, []
        try:
            with session.lock:
                n = tree.begin()
            while True:
                with session.lock:
                    t0 = time.perf_counter()
                    done = tree.step(UPDATE_BUDGET_S)
                    self.update_seconds.append(time.perf_counter() - t0)
                if done:
                    break
                time.sleep(0)  # the UI thread's turn
        except Exception as exc:  # noqa: BLE001 - say so on screen; keep draining the pipe
            self._broken = True
            if session.error is None:
                session.error = f"model update failed: {exc!r}"[:200]
        with session.lock:
            session.sample_rates()
        end = time.monotonic()
        self.updates_done.append((end, n))
        self.lag_seconds.extend(end - t for t in fed)
        self._last_notify = end
        self.on_update()


class FollowFeed(PipeFeed):
    """The same feed over a capture file that is still being written (`view --follow`): new
    bytes as the writer flushes them; the end is the TRAILER, or the writer gone (its lock
    released) with nothing more to read, which leaves the capture incomplete."""

    def __init__(self, follower, session: Session, **kwargs) -> None:
        super().__init__(-1, session, **kwargs)
        self.follower = follower
        self.writer_gone = False

    def _open_source(self) -> None:
        pass

    def _next(self) -> bytes | None:
        data = self.follower.read()
        if data:
            return data
        if self.session.reader.complete or self.follower.frame_ended:
            return None
        if not self.follower.writer_alive():
            data = self.follower.read()  # what it wrote just before it let go
            if data:
                return data
            self.writer_gone = True
            return None
        self._stop_event.wait(0.05)
        return b""

    def _close_source(self) -> None:
        self.follower.close()
