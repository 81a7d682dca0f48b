"""How every test runs the `memtrace` command: one command line and one runner.

The tests run the checkout's CLI as `python -m memtrace_tui` under the interpreter running
them (the console script has tests of its own); the environment is always the caller's,
since each suite sets up its own (C fixtures importable, a private symbol cache, …).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MEMTRACE = (sys.executable, "-m", "memtrace_tui")


def run_memtrace(*args: str, env: dict[str, str], cwd: Path | str | None = None,
                 input: bytes | str | None = None, timeout: float = 120,
                 text: bool = False) -> subprocess.CompletedProcess:
    """Run `memtrace ARGS` to the end with its output captured (bytes, or str if TEXT)."""
    return subprocess.run([*MEMTRACE, *args], cwd=cwd, env=env, input=input,
                          capture_output=True, text=text, timeout=timeout)
