"""Helpers of the attach tests: real target processes started with a plain interpreter
(memtrace NOT on their path) and the memtrace CLI. A uniquely named module, so test files
never import another directory's conftest by mistake."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# The interpreter behind the dev virtualenv: same build as memtrace's, but without memtrace.
TARGET_PYTHON = os.path.realpath(sys.executable)


def target_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "MEMTRACE")) and k != "VIRTUAL_ENV"}
    env.update(extra)
    return env


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    for name in ("MEMTRACE_GDB", "MEMTRACE_ATTACH_TIMEOUT"):
        env.pop(name, None)
    env.update(extra)
    return env


def memtrace(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m memtrace_tui ARGS`, finished, text output."""
    return subprocess.run([sys.executable, "-m", "memtrace_tui", *args], env=env or cli_env(),
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


class Target:
    """A running target process whose stdout lines are collected by a thread."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path,
                 stop_file: Path | None = None, stdin: int | None = subprocess.DEVNULL) -> None:
        self.stop_file = stop_file
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, prefix: str, timeout: float = 10) -> str:
        """The next line starting with prefix (earlier lines are kept in .lines)."""
        end = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line {prefix!r} within {timeout} s; "
                                     f"last lines: {self.lines[-3:]}") from None
            if line is None:
                raise AssertionError(f"target ended before {prefix!r}: {self.stderr()}")
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    def last_leak(self) -> int:
        """Collect the lines printed so far; the number of the last leak among them."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                break
            self.lines.append(line)
        numbers = [int(line.split()[1]) for line in self.lines if line.startswith("leak ")]
        return numbers[-1] if numbers else 0

    def read_all(self, timeout: float = 5) -> None:
        """After the target exited: collect every line it printed."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                self._queue.put(None)
                return
            self.lines.append(line)

    def tasks(self) -> int:
        """Threads of the target right now."""
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def finish(self, timeout: float = 10) -> int:
        """Ask the target to exit (stop file) and return its status."""
        assert self.stop_file is not None
        self.stop_file.touch()
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def build_shared(source: Path, out: Path, *flags: str) -> Path:
    """gcc a test library (-fPIC -shared -Wall plus flags), or fail with gcc's words."""
    import pytest

    if shutil.which("gcc") is None:
        pytest.fail("gcc is required by the attach tests", pytrace=False)
    proc = subprocess.run(["gcc", *flags, "-fPIC", "-shared", "-Wall", str(source), "-o",
                           str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"gcc failed:\n{proc.stderr}", pytrace=False)
    return out

