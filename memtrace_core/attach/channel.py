"""The private channel between the target and memtrace: a FIFO, status files and the checked
copies of what the target loads (trust.py), in a fresh directory of mode 0700 owned by the
attaching user, or by the target's user when root attaches to another user's process (nobody
else can open, read or replace them); removed on close, and by the next attach when memtrace
was killed.

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
from collections.abc import Callable, Iterator
from typing import Any

from memtrace_core.errors import UserError

PREFIX = "memtrace-attach-"
OWNER = "memtrace.pid"
TARGET = "target.pid"


def _candidate_roots() -> list[str]:
    roots = [tempfile.gettempdir(), "/var/tmp", "/dev/shm",
             os.path.join(os.path.expanduser("~"), ".cache")]
    return list(dict.fromkeys(r for r in roots if os.path.isdir(r)))


def channel_root() -> str:
    """Where channel directories go: the temp directory, unless its file system is mounted
    noexec (the target maps the helper library copied there); then the next that is not."""
    roots = _candidate_roots()
    for root in roots:
        try:
            if not os.statvfs(root).f_flag & os.ST_NOEXEC:
                return root
        except OSError:
            continue
    return roots[0] if roots else tempfile.gettempdir()


def _channels() -> Iterator[tuple[str, int, int]]:
    """(directory, memtrace pid, target pid) of every channel directory we wrote (its pid
    file is ours: root hands the directory itself to the target's user when attaching to
    another user's process)."""
    for root in _candidate_roots():
        try:
            names = [n for n in os.listdir(root) if n.startswith(PREFIX)]
        except OSError:
            continue
        for name in names:
            path = os.path.join(root, name)
            try:
                pid_file = os.path.join(path, OWNER)
                if os.lstat(pid_file).st_uid != os.geteuid():
                    continue
                with open(pid_file) as f:
                    owner = int(f.read().strip())
                try:
                    with open(os.path.join(path, TARGET)) as f:
                        target = int(f.read().strip())
                except FileNotFoundError:
                    target = 0
            except (OSError, ValueError):
                continue
            yield path, owner, target


def sweep_stale() -> None:
    """Remove channel directories left by a memtrace that was killed (its pid is gone)."""
    for path, owner, _target in _channels():
        if owner != os.getpid() and not os.path.exists(f"/proc/{owner}"):
            shutil.rmtree(path, ignore_errors=True)


def attachers_of(target_pid: int) -> list[int]:
    """Pids of the live memtrace processes attached to target_pid (from their channels)."""
    return [owner for _path, owner, target in _channels()
            if target == target_pid and owner != os.getpid()
            and os.path.exists(f"/proc/{owner}")]


class Channel:
    """The directory, the FIFO's read end and the status files."""

    def __init__(self, owner_uid: int, target_pid: int = 0) -> None:
        sweep_stale()
        self.dir = tempfile.mkdtemp(prefix=PREFIX, dir=channel_root())  # mode 0700
        self.fifo = os.path.join(self.dir, "stream")
        self.read_fd = -1
        # root attaching to another user's process: that user's agent must open what is here.
        self.chown_to = owner_uid if os.geteuid() == 0 and owner_uid != 0 else None
        try:
            os.mkfifo(self.fifo, 0o600)
            if self.chown_to is not None:
                os.chown(self.dir, self.chown_to, -1)
                os.chown(self.fifo, self.chown_to, -1)
            self.read_fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with open(os.path.join(self.dir, OWNER), "w") as f:
                f.write(str(os.getpid()))
            with open(os.path.join(self.dir, TARGET), "w") as f:
                f.write(str(target_pid))
        except OSError as exc:
            self.close()
            raise UserError(f"cannot create the attach channel in {self.dir}: "
                            f"{exc.strerror}") from None

    def status_path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.json")

    def started_path(self, name: str) -> str:
        """Created by the helper thread as soon as it runs Python code (agent.BOOTSTRAP)."""
        return os.path.join(self.dir, f"{name}.started")

    def started(self, name: str) -> bool:
        return os.path.exists(self.started_path(name))

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
