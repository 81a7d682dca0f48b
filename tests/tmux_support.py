"""A detached tmux session running a command: keys in, screen text out (the real-terminal
tests of the live UI and of `view --follow`)."""

from __future__ import annotations

import re
import shlex
import subprocess
import time
import uuid

PASSED_ENV = ("PYTHONPATH", "MT_LIB", "MT_DL2", "COLORTERM", "TERM", "XDG_CACHE_HOME", "HOME",
              "PATH")


def new_session(args: list[str], tries: int = 5) -> None:
    """`tmux new-session -d ARGS`, again when it lands on a server that is exiting (the
    last session of another test just ended: "server exited unexpectedly")."""
    for attempt in range(tries):
        done = subprocess.run(["tmux", "new-session", "-d", *args], capture_output=True,
                              text=True)
        if done.returncode == 0:
            return
        if attempt == tries - 1 or "server exited" not in done.stderr + done.stdout:
            raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout,
                                                done.stderr)
        time.sleep(0.2)


class Tmux:
    """One detached tmux session running a command; keys in, screen text out."""

    def __init__(self, command: str, cwd, env: dict[str, str], size=(140, 45)) -> None:
        self.name = f"mt-{uuid.uuid4().hex[:8]}"
        env = dict(env, COLORTERM="truecolor", TERM="xterm-256color")
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k in PASSED_ENV)
        # -u COLUMNS/LINES: a tmux server started from pytest inherits COLUMNS=80 LINES=24,
        # and Textual takes those over the pane's real size
        script = (f"cd {shlex.quote(str(cwd))} && env -u COLUMNS -u LINES {exports} {command}; "
                  "echo EXIT=$?; sleep 60")
        new_session(["-s", self.name, "-x", str(size[0]), "-y", str(size[1]), script])

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", self.name, key], check=True)
            time.sleep(0.15)

    def screen(self, colours: bool = False) -> str:
        args = ["tmux", "capture-pane", "-p", "-t", self.name] + (["-e"] if colours else [])
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout

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
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)
