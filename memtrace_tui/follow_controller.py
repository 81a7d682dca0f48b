"""`memtrace view --follow`'s controller: a capture that another process is still writing.

The viewer owns nothing: quitting never asks and never touches the program (any number of
viewers may come and go). The status reads "running" while the stream grows, then the exit
status from the capture's TRAILER, or "incomplete" when its writer went away without one.
"""

from __future__ import annotations

import threading

from memtrace_core.model import Session
from memtrace_core.model.feed import FollowFeed
from memtrace_tui.messages import ModelUpdated, ProgramExited


class FollowController:
    """Feeds the session from a CaptureFollower; reports the end of the stream."""

    owns_program = False  # the app quits at once: a viewer never stops or detaches anything

    def __init__(self, follower, session: Session) -> None:
        self.follower = follower
        self.session = session
        self.log_path: str | None = None
        self.feed: FollowFeed | None = None

    def start(self, app) -> None:
        self.feed = FollowFeed(self.follower, self.session,
                               on_update=lambda: app.post_message(ModelUpdated()))
        self.feed.start()
        threading.Thread(target=self._wait_end, args=(app,), name="memtrace-follow-end",
                         daemon=True).start()

    def _wait_end(self, app) -> None:
        assert self.feed is not None
        self.feed.eof.wait()
        with self.session.lock:
            reader = self.session.reader
            code = reader.trailer.get("exit_code") if reader.complete else None
            if not reader.complete:
                self.session.end_note = "capture incomplete (its writer is gone)"
        app.post_message(ProgramExited(code))

    def set_paused(self, paused: bool) -> None:
        if self.feed is not None:
            self.feed.paused = paused

    def stop_program(self) -> None:  # never offered (owns_program is False)
        self.detach()

    def detach(self) -> None:
        if self.feed is not None:
            self.feed.stop()
