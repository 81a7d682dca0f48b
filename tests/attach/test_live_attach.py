"""`memtrace live --attach PID` end to end in a real terminal (tmux): the TUI shows the
target's leaking function, quitting with "run on untraced" detaches, the target runs on."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.attach.attach_support import REPO

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def pane(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                          text=True).stdout


def wait_pane(session: str, text: str, timeout: float = 10) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        screen = pane(session)
        if text in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not on screen:\n{pane(session)}")


def test_live_attach_shows_leak_and_detaches(start_target, tmp_path: Path):
    target = start_target()
    target.wait_line("leak 2 ")
    tasks = target.tasks()
    session = f"mt-attach-{target.pid}"
    done = tmp_path / "exit"
    command = (f"cd {tmp_path} && env -u COLUMNS -u LINES PYTHONPATH={REPO} {sys.executable} "
               "-m memtrace_tui live "
               f"--attach {target.pid}; echo $? > {done}; sleep 30")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "45",
                    command], check=True)
    try:
        wait_pane(session, "attach_target.py")
        end = time.monotonic() + 10  # `e` again until the leak's path is in the tree
        while "leak_python" not in pane(session) and time.monotonic() < end:
            subprocess.run(["tmux", "send-keys", "-t", session, "e"], check=True)
            time.sleep(0.5)
        wait_pane(session, "leak_python")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        wait_pane(session, "untraced")
        subprocess.run(["tmux", "send-keys", "-t", session, "u"], check=True)
        end = time.monotonic() + 10
        while not done.exists() and time.monotonic() < end:
            time.sleep(0.1)
        assert done.read_text().strip() == "0", pane(session)
        assert f"process {target.pid} runs on untraced" in pane(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    end = time.monotonic() + 3
    while target.tasks() != tasks and time.monotonic() < end:
        time.sleep(0.05)
    assert target.tasks() == tasks
    target.wait_line(f"leak {target.last_leak() + 3} ")
    assert target.finish() == 0
    assert target.stderr() == ""
