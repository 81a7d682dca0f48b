"""End to end in a real terminal (tmux): `memtrace live --native` keeps up with a program
that first makes thousands of distinct native stacks, then leaks through a named C
function. Sampled every second, the tree's root (its top-level rows after `c`) matches the
header's heap; the leaking function is on screen soon after its first allocation; the
status says the program exited right after it did."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import MEMTRACE
from tests.tmux_support import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is required")

CFIXTURES = Path(__file__).resolve().parents[1] / "cfixtures"
DEPTH = 13  # 8192 distinct native stacks in the burst
LEAK = 200_000  # bytes per leak step, 10 steps a second
UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}

PROGRAM = f"""\
import ctypes, os, sys, time
lib = ctypes.CDLL(sys.argv[1])
lib.mt_leak_step.argtypes = [ctypes.c_size_t]


def burst():
    lib.burst_all({DEPTH})


def leak_until_told():
    while not os.path.exists("stop-now"):
        lib.mt_leak_step({LEAK})
        time.sleep(0.1)


def say(name):  # whole or not at all: the test reads it as soon as it exists
    with open(name + ".part", "w") as f:
        f.write(repr(time.time()))
    os.rename(name + ".part", name)


burst()
time.sleep(1.0)
say("first-leak")
leak_until_told()
say("exit-time")
"""


def size(text: str) -> int:
    number, unit = text.split()
    return int(float(number) * UNITS[unit])


def header_heap(screen: str) -> int | None:
    m = re.search(r"heap ([\d.]+ (?:B|KiB|MiB|GiB))", screen.splitlines()[0])
    return size(m.group(1)) if m else None


def root_rows(screen: str) -> list[int]:
    """The in-use figures of the tree's top-level rows (the tree is collapsed)."""
    out = []
    for line in screen.splitlines():
        # two spaces before the arrow: a nested row is indented further (a screen taken
        # before `c` was handled still shows the expanded rows, which are not counted)
        m = re.match(r"\s*([\d.]+ (?:B|KiB|MiB|GiB))\s+[\d.]+ (?:B|KiB|MiB|GiB)\s+[\d.]+%"
                     r"\s+[\d,]+  [▶▼ ] \[", line)
        if m:
            out.append(size(m.group(1)))
    return out


@pytest.fixture(scope="module")
def burstlib(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mtburst") / "libmtburst.so"
    subprocess.run(["gcc", "-g", "-O1", "-fno-optimize-sibling-calls", "-fPIC", "-shared",
                    str(CFIXTURES / "mtburst.c"), "-o", str(out)], check=True)
    return out


def test_live_keeps_up_with_a_burst_then_a_leak(tmp_path, mt, burstlib):
    (tmp_path / "prog.py").write_text(PROGRAM)
    env = dict(mt.env, XDG_CACHE_HOME=str(tmp_path / "cache"))
    cmd = " ".join(shlex.quote(a) for a in (*MEMTRACE, "live",
                                            "--native", "prog.py", str(burstlib)))
    t = Tmux(cmd, tmp_path, env)
    try:
        t.wait_for(r"running")
        # sampled every second: the collapsed tree's top rows add up to the header's heap
        # (to the rounding of the shown figures, and the growth of one second)
        samples = 0
        leak_seen = None
        first_leak = tmp_path / "first-leak"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (samples < 6 or leak_seen is None):
            t.keys("c")
            screen = t.screen()
            heap, rows = header_heap(screen), root_rows(screen)
            if heap is not None and rows:
                slack = 0.05 * UNITS["MiB"] * (len(rows) + 1) + 10 * LEAK
                assert abs(sum(rows) - heap) <= slack, screen
                samples += 1
            if first_leak.exists() and leak_seen is None:
                start = float(first_leak.read_text())
                t.keys("Home", "e")  # the hottest path from the top row
                # the keys take a moment: look for 0.3 s before trying again
                until = time.monotonic() + 0.3
                while leak_seen is None and time.monotonic() < until:
                    if "mt_leak_step" in t.screen():
                        leak_seen = time.time() - start
                    time.sleep(0.02)
                if leak_seen is not None:
                    continue
            # the next sample in a second (half a second once the leak began); the first
            # leak is looked for as soon as its file appears: the test's own waits are not
            # the app's delay
            waiting_for_leak = leak_seen is None and not first_leak.exists()
            until = time.monotonic() + (1.0 if waiting_for_leak else 0.5)
            while time.monotonic() < until:
                if waiting_for_leak and first_leak.exists():
                    break
                time.sleep(0.02)
        assert samples >= 6
        assert leak_seen is not None, t.screen()
        assert leak_seen <= 2.0 + 1.0  # issue: within 2 s (+1 s for a loaded test machine)
        t.keys("c", "Home", "e")
        assert "[c] mt_leak_step" in t.wait_for(r"mt_leak_step")
        print(f"leaking function on screen {leak_seen:.2f} s after its first allocation")
        (tmp_path / "stop-now").touch()
        while not (tmp_path / "exit-time").exists():
            time.sleep(0.01)
        end = float((tmp_path / "exit-time").read_text())
        while "exited" not in t.screen() and time.time() - end < 10:
            time.sleep(0.02)
        shown = time.time() - end
        assert "exited with status 0" in t.screen()
        assert shown <= 0.5 + 0.5, shown  # issue: within 0.5 s (+0.5 s for a loaded machine)
        print(f"exit on screen {shown:.2f} s after the program's last line; {samples} samples")
        t.keys("q")
        t.wait_for(r"EXIT=0")
    finally:
        (tmp_path / "stop-now").touch()
        t.close()
