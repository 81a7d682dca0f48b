"""`memtrace live --attach PID` end to end in a real terminal (tmux): the TUI shows the
target's leaking function, quitting with "run on untraced" detaches, the target runs on."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from tests.attach.attach_support import REPO, wait_tasks
from tests.tmux_support import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def test_live_attach_shows_leak_and_detaches(start_target, tmp_path: Path):
    target = start_target()
    target.wait_line("leak 2 ")
    tasks = target.base_tasks()
    command = f"{shlex.quote(sys.executable)} -m memtrace_tui live --attach {target.pid}"
    t = Tmux(command, tmp_path, {"PYTHONPATH": str(REPO), "PATH": os.environ["PATH"]},
             size=(160, 45))
    try:
        t.wait_for("attach_target.py", timeout=10)
        # from the top row each time (the first row chosen may be the worker thread's)
        t.wait_for("leak_python", timeout=10, keys=("c", "Home", "e"))
        t.keys("q")
        t.wait_for("untraced", timeout=10)
        t.keys("u")
        screen = t.wait_for(r"EXIT=\d+", timeout=10)
        assert "EXIT=0" in screen, screen
        assert f"process {target.pid} runs on untraced" in screen, screen
    finally:
        t.close()
    assert wait_tasks(target, tasks) == tasks
    target.wait_line(f"leak {target.last_leak() + 3} ")
    assert target.finish() == 0
    assert target.stderr() == ""
