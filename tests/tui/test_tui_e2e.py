"""End-to-end: `memtrace live` in a real terminal (tmux), driven with send-keys and read
back with capture-pane, on the gcc-built ground-truth C extension."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import time

import pytest

from tests.cli import MEMTRACE
from tests.tmux_support import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is required")

LEAKED = 5000011 + 5001024 + 5002037  # mt_leaf's three kept blocks (tests/cfixtures/mtext.c)
NATIVE_SGR = ("38;2;95;175;255", "38;5;75")  # #5fafff, truecolor or xterm-256

LEAKY = """\
import os, sys, time
import mtext


def do_leak():
    mtext.leak_pattern()


def main():
    do_leak()
    print("leaked", flush=True)
    while not os.path.exists("stop-now"):
        time.sleep(0.05)
    sys.exit(int(sys.argv[1]))


main()
"""


@pytest.fixture
def leaky(tmp_path, mt):
    (tmp_path / "leaky.py").write_text(LEAKY)
    env = dict(mt.env, XDG_CACHE_HOME=str(tmp_path / "cache"))
    sessions = []

    def start(*args: str) -> Tmux:
        cmd = " ".join(shlex.quote(a) for a in (*MEMTRACE, "live",
                                                *args))
        t = Tmux(cmd, tmp_path, env)
        sessions.append(t)
        return t

    yield start
    (tmp_path / "stop-now").touch()
    for t in sessions:
        t.close()


def test_live_native_navigates_to_leaking_c_function(leaky, tmp_path):
    t = leaky("--native", "-o", "live.mtrace", "leaky.py", "0")
    t.wait_for(r"running")
    # `e` expands the hottest path from the top row; repeat until the frames are named
    # (from the top each time: a first `e` from the imports' row would end on a leaf)
    t.wait_for(r"\[c\] mt_leaf", timeout=60, keys=("c", "Home", "e"))
    # every name in (the header lists names pending only while there are): paths are final
    t.wait_for(r"\A(?![\s\S]*names pending)", timeout=60)
    t.keys("c", "e")
    t.wait_for(r"\[c\] mt_leaf.*mtext\.c")
    # the detail pane follows the selection a moment later
    screen = t.wait_for(rf"\A(?=[\s\S]*\[c\] mt_leaf.*mtext\.c)(?=[\s\S]*\({LEAKED} B\) in 3)")
    row = next(line for line in screen.splitlines() if "[c] mt_leaf" in line)
    assert "14.3 MiB" in row and "mtext.c:45" in row
    assert re.search(r"\[py\] do_leak", screen)
    assert f"({LEAKED} B) in 3" in screen  # the detail pane of the selected leaf: exact bytes
    assert "library " in screen and "mtext" in screen
    coloured = t.screen(colours=True)
    leaf = next(line for line in coloured.splitlines() if "mt_leaf" in line)
    # the function name itself is drawn in the native colour (last colour set before it)
    colours = re.findall(r"38;(?:2;\d+;\d+;\d+|5;\d+)", leaf[: leaf.index("mt_leaf")])
    assert colours and colours[-1] in NATIVE_SGR, repr(leaf)
    # quitting while it runs asks; `s` stops the program
    t.keys("q")
    t.wait_for(r"still running")
    t.keys("s")
    screen = t.wait_for(r"EXIT=\d+")
    assert "capture: live.mtrace" in screen
    from memtrace_core.reader import read_capture

    saved = read_capture(tmp_path / "live.mtrace")  # the stream exactly as received
    assert open(tmp_path / "live.mtrace", "rb").read(8) == b"MEMTRACZ"  # as memtrace run writes
    assert saved.header["native"] and saved.heap_bytes >= LEAKED


def test_live_program_exit_shows_final_status(leaky, tmp_path):
    t = leaky("leaky.py", "3")
    t.wait_for(r"running")
    t.wait_for(r"do_leak", keys=("c", "Home", "e"))
    (tmp_path / "stop-now").touch()
    screen = t.wait_for(r"exited with status 3")
    assert "[py] do_leak" in screen  # the final state stays on screen
    assert "EXIT=" not in screen  # the app is still open
    time.sleep(0.5)
    assert "EXIT=" not in t.screen()
    t.keys("q")
    assert "EXIT=3" in t.wait_for(r"EXIT=\d+")


def test_live_detach_lets_the_program_run_on(leaky, tmp_path):
    t = leaky("leaky.py", "0")
    t.wait_for(r"running")
    t.keys("q")
    t.wait_for(r"still running")
    t.keys("u")
    screen = t.wait_for(r"EXIT=\d+")
    assert "runs on untraced" in screen and "EXIT=0" in screen
    pid = int(re.search(r"pid (\d+) runs on untraced", screen).group(1))
    os.kill(pid, 0)  # still alive, untraced
    log = re.search(r"program output: (\S+)", screen).group(1)
    assert open(log).read().startswith("leaked")
    (tmp_path / "stop-now").touch()
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the detached program did not finish")
