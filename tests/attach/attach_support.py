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

from memtrace_core.reader import read_capture
from tests.cli import memtrace_env, run_memtrace

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
    """memtrace's environment, without the attach settings a developer may have set."""
    env = memtrace_env()
    for name in ("MEMTRACE_GDB", "MEMTRACE_ATTACH_TIMEOUT"):
        env.pop(name, None)
    env.update(extra)
    return env


def memtrace(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m memtrace_tui ARGS`, finished, text output."""
    return run_memtrace(*args, env=env or cli_env(), cwd=cwd, timeout=timeout, text=True)


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

    def base_tasks(self) -> int:
        """Threads of the target without the short thread it starts every 10th round: the
        fewest of four looks 20 ms apart (that thread lives well under 20 ms)."""
        seen = []
        for _ in range(4):
            seen.append(self.tasks())
            time.sleep(0.02)
        return min(seen)

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


# -- ground truth of the leak targets (attach_target.py), checked in captures ----------
PY_BLOCK = 100_001  # bytearray(100_000) in the target
C_BLOCK = 70_001


def leak_lines(lines: list[str]) -> tuple[dict[int, int], dict[int, int]]:
    """Ground truth printed by the target: address -> leak number, Python and C."""
    py, c = {}, {}
    for line in lines:
        if line.startswith("leak "):
            _, n, py_addr, c_addr = line.split()[:4]
            py[int(py_addr)] = int(n)
            c[int(c_addr)] = int(n)
    return py, c


def live_name(reader, sid: int) -> str:
    stack = reader.py_stack(reader.stack_key(sid)[0])
    return reader.codes[stack[0][0]][0] if stack else ""


def live_by_function(reader) -> dict[str, dict[int, tuple[int, int]]]:
    """Innermost Python function -> {address: (size, nativenode)} of live allocations."""
    out: dict[str, dict[int, tuple[int, int]]] = {}
    for address, size, sid, _allocator in reader.live_allocations():
        pynode, nativenode, _thread = reader.stack_key(sid)
        stack = reader.py_stack(pynode)
        name = reader.codes[stack[0][0]][0] if stack else ""
        out.setdefault(name, {})[address] = (size, nativenode)
    return out


def check_exact(capture: Path, lines: list[str], minimum: int) -> dict:
    """Every leak between the first and last one traced is in the capture with its exact
    size and function, and no block of that size there is one the target did not print
    (other sizes are the interpreter's own: pymalloc arenas, ctypes); returns the live map."""
    reader = read_capture(capture)
    assert reader.header["attached"] is True
    assert reader.complete, "no trailer: detach was not clean"
    truth_py, truth_c = leak_lines(lines)
    live = live_by_function(reader)
    for function, truth, size in (("leak_python", truth_py, PY_BLOCK),
                                  ("leak_c", truth_c, C_BLOCK)):
        got = {a: v for a, v in live.get(function, {}).items() if v[0] == size}
        assert len(got) >= minimum, f"{function}: only {len(got)} leaks traced"
        assert set(got) <= set(truth), f"{function}: addresses the target never printed"
        numbers = sorted(truth[a] for a in got)
        assert numbers == list(range(numbers[0], numbers[-1] + 1)), f"{function}: gaps"
        assert sum(s for s, _ in got.values()) == (numbers[-1] - numbers[0] + 1) * size
    # Threads that existed before attach carry their Python names.
    workers = [i for i, (_tid, name) in reader.threads.items() if name == "leak-worker"]
    assert len(workers) == 1, reader.threads
    threads = {reader.stack_key(sid)[2] for _a, size, sid, _k in reader.live_allocations()
               if size == 30_001 and live_name(reader, sid) == "thread_leak"}
    assert threads == {workers[0]}
    # Frees of blocks made before attach (the pool) are ignored, totals stay consistent.
    assert reader.heap_bytes == sum(size for _, size, _, _ in reader.live_allocations())
    return live


def wait_tasks(target, count: int, timeout: float = 3.0) -> int:
    """The target's thread count once it is `count` (or the last one seen at the timeout):
    the count seen, not a second look, which could catch the short thread the target
    starts every 10th round."""
    end = time.monotonic() + timeout
    while True:
        seen = target.tasks()
        if seen == count or time.monotonic() >= end:
            return seen
        time.sleep(0.02)
