"""The private channel between the target and memtrace: a FIFO and status files in a fresh
directory of mode 0700 (nobody else can open, read or replace them), removed on close.

The read end is opened first, non-blocking (so opening never waits for the writer): the
agent's non-blocking open for writing then succeeds at once, or fails with ENXIO when
memtrace has gone, so neither side can block forever on the other.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

from memtrace_core.errors import UserError

PREFIX = "memtrace-attach-"
OWNER = "memtrace.pid"


def sweep_stale() -> None:
    """Remove channel directories left by a memtrace that was killed (its pid is gone)."""
    root = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(root) if n.startswith(PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(root, name)
        try:
            if os.stat(path).st_uid != os.geteuid():
                continue
            with open(os.path.join(path, OWNER)) as f:
                owner = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if owner != os.getpid() and not os.path.exists(f"/proc/{owner}"):
            shutil.rmtree(path, ignore_errors=True)


class Channel:
    """The directory, the FIFO's read end and the status files."""

    def __init__(self, owner_uid: int) -> None:
        sweep_stale()
        self.dir = tempfile.mkdtemp(prefix=PREFIX)  # mode 0700
        self.fifo = os.path.join(self.dir, "stream")
        self.read_fd = -1
        try:
            os.mkfifo(self.fifo, 0o600)
            if os.geteuid() == 0 and owner_uid != 0:
                # root attaching to another user's process: that user's agent must open it.
                os.chown(self.dir, owner_uid, -1)
                os.chown(self.fifo, owner_uid, -1)
            self.read_fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with open(os.path.join(self.dir, OWNER), "w") as f:
                f.write(str(os.getpid()))
        except OSError as exc:
            self.close()
            raise UserError(f"cannot create the attach channel in {self.dir}: "
                            f"{exc.strerror}") from None

    def status_path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.json")

    def wait_status(self, name: str, deadline: float,
                    alive: Callable[[], bool]) -> dict[str, Any] | None:
        """The agent's outcome, or None at the deadline; raises when the target exits."""
        path = self.status_path(name)
        while True:
            try:
                with open(path, encoding="utf-8") as f:
                    return json.load(f)
            except FileNotFoundError:
                pass
            except (OSError, ValueError):
                return {"ok": False, "kind": "agent", "message": "unreadable status from target"}
            if not alive():
                raise TargetGone
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def close(self) -> None:
        """Close our end (if still ours) and remove the directory."""
        if self.read_fd >= 0:
            try:
                os.close(self.read_fd)
            except OSError:
                pass
            self.read_fd = -1
        shutil.rmtree(self.dir, ignore_errors=True)


class TargetGone(Exception):
    """The target exited while we waited for it."""
