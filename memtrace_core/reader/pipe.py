"""A stream's pipe or FIFO, read in chunks by a background thread that must stay stoppable:
one definition of the poll-then-read loop of the live feed (model/feed.py) and of the
capture copier (capture/copier.py)."""

from __future__ import annotations

import os
import select

POLL_MS = 50  # the longest a stop request waits for the reading thread


class PipeSource:
    """fd's bytes as they come (owned: close() closes it)."""

    def __init__(self, fd: int, chunk: int) -> None:
        self.fd = fd
        self.chunk = chunk
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def next(self) -> bytes | None:
        """The next bytes: b"" when none came within POLL_MS, None at the end."""
        if not self._poller.poll(POLL_MS):
            return b""
        data = os.read(self.fd, self.chunk)
        return data if data else None

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
