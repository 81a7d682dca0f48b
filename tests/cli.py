"""How every test runs the `memtrace` command: one command line, one environment, one runner.

The tests run the checkout's CLI as `python -m memtrace_tui` under the interpreter running
them (the console script has tests of its own), with the checkout first on the import path;
a suite adds what it needs to that environment (C fixtures importable, a private symbol
cache, …).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEMTRACE = (sys.executable, "-m", "memtrace_tui")
# would change what the traced programs allocate, or run code before them; or, COLUMNS and
# LINES (pytest-xdist's workers set 80 and 24), the width reports are printed at, which
# the tests' expected lines assume is memtrace's own default for output that is not a tty
UNSET = ("PYTHONMALLOC", "PYTHONTRACEMALLOC", "PYTHONDEVMODE", "PYTHONSTARTUP", "COLUMNS",
         "LINES")


def memtrace_env(*paths: str | Path, **extra: str) -> dict[str, str]:
    """This environment with the checkout (then PATHS) first on PYTHONPATH, without the
    variables in UNSET, plus EXTRA."""
    env = dict(os.environ)
    path = [str(REPO), *map(str, paths)]
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(path)
    for name in UNSET:
        env.pop(name, None)
    env.update(extra)
    return env


def run_memtrace(*args: str, env: dict[str, str] | None = None,
                 cwd: Path | str | None = None, input: bytes | str | None = None,
                 timeout: float = 120, text: bool = False) -> subprocess.CompletedProcess:
    """Run `memtrace ARGS` to the end with its output captured (bytes, or str if TEXT), in
    ENV (memtrace_env() by default)."""
    return subprocess.run([*MEMTRACE, *args], cwd=cwd, env=memtrace_env() if env is None else env,
                          input=input, capture_output=True, text=text, timeout=timeout)
