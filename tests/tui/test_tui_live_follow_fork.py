"""`memtrace live --follow-fork` in a real terminal (tmux): the header counts the traced
processes, key P lists the program and each child with its own numbers, enter opens a
child's capture (followed while it is written) or all of them merged, and quitting either
comes back to the program's live view; each child's capture holds exactly what it leaked.
Without the flag the header says how many children ran untraced so far, while the program
runs."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from memtrace_core.model.session import Summary
from memtrace_tui.header import header_content
from tests.cli import MEMTRACE
from tests.tmux_support import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is required")

FAMILY = """\
import os, subprocess, sys, time
import mtext


def child_leak():
    mtext.keep_blocks(5, 80021)


def parent_leak():
    mtext.keep_blocks(2, 90007)


def wait():
    while not os.path.exists("stop-now"):
        time.sleep(0.05)


parent_leak()
pid = os.fork()
if pid == 0:
    child_leak()
    wait()
    os._exit(0)
wait()
os.waitpid(pid, 0)
subprocess.run(["true"])  # not Python: never traced, counted when not following
sys.exit(0)
"""


@pytest.fixture
def live(tmp_path, mt):
    (tmp_path / "family.py").write_text(FAMILY)
    env = dict(mt.env, XDG_CACHE_HOME=str(tmp_path / "cache"))
    sessions: list[Tmux] = []

    def start(*args: str) -> Tmux:
        cmd = " ".join(shlex.quote(a) for a in (*MEMTRACE, "live",
                                                *args))
        t = Tmux(cmd, tmp_path, env, size=(150, 40))
        sessions.append(t)
        return t

    yield start
    (tmp_path / "stop-now").touch()
    for t in sessions:
        t.close()


def _leak_at(mt, capture: Path, function: str) -> tuple[int, int] | None:
    for entry in mt.stats(capture)["top_locations"]:
        if entry["function"] == function:
            return entry["leaked_bytes"], entry["leaked_count"]
    return None


def test_live_follow_fork_picks_a_child_and_comes_back(live, tmp_path, mt):
    t = live("--follow-fork", "-o", "fam.mtrace", "family.py")
    t.wait_for(r"running .*2 processes")
    children = list(tmp_path.glob("fam.mtrace.*"))
    assert len(children) == 1, children
    child_pid = children[0].suffix[1:]
    t.keys("P")
    screen = t.wait_for(rf"pid {child_pid}  running  heap")
    assert "all 2 processes" in screen and "the program  running" in screen
    t.keys("Down", "Enter")  # the program's row is highlighted first; the child is next
    # the child's own view (`view --follow`); its header may show the command (as much of it
    # as fits) between the pid and the status
    t.wait_for(rf"pid {child_pid}  (?:.*  )?running")
    # child_leak()'s line with its 5 blocks of 80,021 B (rows, not the hottest path: a
    # pymalloc arena of 1 MiB may be the biggest node)
    screen = t.wait_for(r"390\.7 KiB .* 5  . \[py\] <module>  family\.py:21")
    assert "family.py:18" not in screen  # only what the child allocated after the fork
    t.keys("q")  # back in the program's live view, still fed
    screen = t.wait_for(r"running .*2 processes")
    assert f"pid {child_pid} " not in screen
    t.wait_for(r"175\.8 KiB .* 2  . \[py\] <module>  family\.py:18")  # parent_leak()
    # the first row: all processes together, merged by frame, followed as they are written
    t.keys("P")
    t.wait_for(r"all 2 processes together")
    t.keys("Home", "Enter")
    # one screen with both processes' lines under the header (the two captures are read
    # as they come: a screen between the two would show one)
    t.wait_for(r"\A[^\n]*running .*2 processes"
               r"(?=[\s\S]*390\.7 KiB .* 5  . \[py\] <module>  family\.py:21)"
               r"(?=[\s\S]*175\.8 KiB .* 2  . \[py\] <module>  family\.py:18)")
    (tmp_path / "stop-now").touch()  # both end: the merged view follows them to the end
    screen = t.wait_for(r"exited with status 0")
    assert "family.py:21" in screen
    t.keys("q")  # back in the program's live view (its key bar offers P)
    t.wait_for(r"exited with status 0 .*2 processes(.*\n)*.* P process ")
    t.keys("q")
    said = t.wait_for(r"EXIT=\d+")  # memtrace's last lines, after the UI closed
    assert "EXIT=0" in said
    assert f"1 child process capture: {children[0]}" in said.replace("\n", ""), said
    assert _leak_at(mt, children[0], "child_leak") == (5 * 80021, 5)
    assert _leak_at(mt, children[0], "parent_leak") is None
    assert _leak_at(mt, tmp_path / "fam.mtrace", "parent_leak") == (2 * 90007, 2)
    assert mt.stats(children[0])["complete"] is True
    # `stats` of the program's capture lists its child's
    assert mt.stats(tmp_path / "fam.mtrace")["child_captures"] == [str(children[0])]


def test_live_without_the_flag_counts_untraced_children(live, tmp_path):
    t = live("family.py")
    screen = t.wait_for(r"running")
    assert "process" not in screen.splitlines()[0]
    t.keys("P")  # no children traced: the key does nothing
    # the forked child is counted while the program runs (a TICK carries the count)
    t.wait_for(r"running .*1 child untraced")
    (tmp_path / "stop-now").touch()
    screen = t.wait_for(r"exited with status 0 .*2 children untraced")
    assert "Processes" not in screen
    t.keys("q")
    t.wait_for(r"EXIT=0")
    assert not list(tmp_path.glob("*.mtrace.*"))


def _summary(**fields) -> Summary:
    base = dict(pid=4242, command="python family.py", status="exited with status 0",
                elapsed_s=1.0, heap_bytes=1 << 20, peak_bytes=2 << 20, peak_time_s=0.5,
                allocs_per_s=0.0, records_per_s=0.0, pending_symbols=0, records=10,
                native=False)
    return Summary(**{**base, **fields})


@pytest.mark.parametrize("width", [80, 100, 150])
def test_header_keeps_the_process_counts_at_any_width(width):
    traced = header_content(_summary(processes=3), width).plain
    assert "3 processes" in traced and "untraced" not in traced
    untraced = header_content(_summary(untraced_children=2), width).plain
    assert "2 children untraced" in untraced
    assert ("(--follow-fork traces them)" in untraced) == (width == 150)
    # following children: the untraced ones are not Python, so no hint to follow them
    following = header_content(_summary(processes=2, untraced_children=1), width).plain
    assert "1 child untraced" in following and "--follow-fork" not in following
    one = header_content(_summary(untraced_children=1, processes=0), width).plain
    assert "1 child untraced" in one and "process" not in one
    plain = header_content(_summary(), width).plain
    assert "process" not in plain and "untraced" not in plain
