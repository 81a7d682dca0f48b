"""A detached tmux session running a command: keys in, screen text out (the real-terminal
tests of the live UI and of `view --follow`)."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import tempfile
import time
import uuid

PASSED_ENV = ("PYTHONPATH", "MT_LIB", "MT_DL2", "COLORTERM", "TERM", "XDG_CACHE_HOME", "HOME",
              "PATH")


class Tmux:
    """One detached tmux session running a command; keys in, screen text out. Each has a
    tmux server of its own (`-S`): on the shared default server, a test closing the last
    session made the server exit just as another test's `new-session` reached it."""

    def __init__(self, command: str, cwd, env: dict[str, str], size=(140, 45)) -> None:
        self.name = f"mt-{uuid.uuid4().hex[:8]}"
        self.socket = os.path.join(tempfile.gettempdir(), f"{self.name}.tmux")
        env = dict(env, COLORTERM="truecolor", TERM="xterm-256color")
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()
                           if k in PASSED_ENV or k.startswith("MT_"))
        # -u COLUMNS/LINES: a tmux server started from pytest inherits COLUMNS=80 LINES=24,
        # and Textual takes those over the pane's real size
        script = (f"cd {shlex.quote(str(cwd))} && env -u COLUMNS -u LINES {exports} {command}; "
                  "echo EXIT=$?; sleep 60")
        self.tmux("new-session", "-d", "-s", self.name, "-x", str(size[0]), "-y", str(size[1]),
                  script)

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """A tmux command on this session's own server."""
        return subprocess.run(["tmux", "-S", self.socket, "-f", "/dev/null", *args],
                              capture_output=True, text=True, check=check)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", self.name, key)
            time.sleep(0.15)

    def screen(self, colours: bool = False) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name, *(["-e"] if colours else [])
                         ).stdout

    def wait_for(self, pattern: str, timeout: float = 30.0, keys: tuple[str, ...] = ()) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if keys:
                self.keys(*keys)
            text = self.screen()
            if re.search(pattern, text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} never appeared; screen:\n{self.screen()}")

    def close(self) -> None:
        self.tmux("kill-server", check=False)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
