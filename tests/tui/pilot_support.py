"""Helpers of the Pilot tests: a live feed over a pipe the test writes to, and waiting for a
condition with a timeout (never a fixed pause before checking a repaint)."""

from __future__ import annotations

import asyncio

from memtrace_core.model import Session
from memtrace_core.model.feed import PipeFeed
from memtrace_tui.messages import ModelUpdated


class PipeController:
    """The live controller's feed part, over a pipe the test writes to."""

    log_path = None

    def __init__(self, fd: int, session: Session) -> None:
        self.fd = fd
        self.session = session
        self.feed: PipeFeed | None = None

    def start(self, app) -> None:
        self.feed = PipeFeed(self.fd, self.session, interval=0.02,
                             on_update=lambda: app.post_message(ModelUpdated()))
        self.feed.start()

    def set_paused(self, paused: bool) -> None:
        self.feed.paused = paused

    def stop_program(self) -> None:
        self.feed.stop()

    detach = stop_program


async def wait_for(predicate, timeout=5.0):
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def until(pilot, predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached")
