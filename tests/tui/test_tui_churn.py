"""Issue 18's churn under `memtrace live --native`: 300 generated functions calling each other
to random depths, a bounded pool of buffers with random frees
(benchmarks/workloads/churn_tree.py).

Headless (the real runner, pipe, feed thread, model and app): at every repaint the header's
heap, the tree's root and the sum of its top rows are one number, the reader's own figure at
that point of the stream; repaints keep coming while it runs. In tmux (a real terminal): the
header's clock keeps moving and the top rows on screen add up to the header's heap at every
sample. Repaint gaps are asserted generously (a shared 2-core machine); the real figures come
from `benchmarks/bench_tui.py --only churn`.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memtrace_core.model.build import call_tree
from memtrace_core.model.feed import enlarge_pipe
from memtrace_core.model.metrics import LIVE_BYTES
from memtrace_core.model.session import Session
from memtrace_core.reader import StreamReader
from memtrace_tui.app import MemtraceApp
from memtrace_tui.live_controller import LiveController
from tests.cli import MEMTRACE
from tests.tmux_support import Tmux
from tests.tui import scenarios

CHURN = Path(__file__).parents[2] / "benchmarks" / "workloads" / "churn_tree.py"
SECONDS = 30
GAP_LIMIT = 2.0  # seconds; the 0.5 s is the benchmark's figure, not a timed test's
UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}


def start_traced(tmp_path: Path, env: dict[str, str], *args: str
                  ) -> tuple[subprocess.Popen, int]:
    """`memtrace live --native`'s child: the runner writing the churn program's stream."""
    read_fd, write_fd = os.pipe()
    enlarge_pipe(read_fd)
    with open(tmp_path / "output.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memtrace_core.tracer.runner", "--fd", str(write_fd),
             "--native", str(CHURN), *args],
            pass_fds=[write_fd], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env=env, start_new_session=True)
    os.close(write_fd)
    return proc, read_fd


@scenarios.sync
async def test_churn_root_equals_header_at_every_repaint(tmp_path, mt):
    proc, read_fd = start_traced(tmp_path, mt.env, str(SECONDS))
    reader = StreamReader()
    tree = call_tree(reader, native=True)
    session = Session(reader, tree, live=True)
    controller = LiveController(proc, read_fd, session, log_path=str(tmp_path / "output.log"))
    app = MemtraceApp(session, controller)
    samples: list[tuple[float, int, int, int, int]] = []
    peaks: list[tuple[int, int]] = []  # (header's peak, chart's top) per repaint
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            main = app.main
            repaint = main.refresh_all

            def checked() -> None:
                with session.lock:  # the feed may commit as soon as the repaint lets go
                    repaint()
                    root = tree.root
                    top = sum(c.total[LIVE_BYTES] for c in tree.children(root))
                    summary = main.header_bar.summary
                    samples.append((time.monotonic(), summary.heap_bytes,
                                    root.total[LIVE_BYTES], top + root.own[LIVE_BYTES],
                                    tree.figures.heap_bytes))
                    peaks.append((summary.peak_bytes, main.chart.peak))

            main.refresh_all = checked
            keys = ["e", "j", "j", "c", "e", "k", "d", "d"]
            turn = 0
            while proc.poll() is None:  # keys now and then, as someone looking around
                await asyncio.sleep(1.0)
                await pilot.press(keys[turn % len(keys)])
                turn += 1
            ended = time.monotonic()
            await asyncio.to_thread(controller.feed.eof.wait, 30)
            await pilot.pause(1.0)  # the last update's repaint
            with session.lock:
                final = (tree.root.total[LIVE_BYTES], reader.heap_bytes)
    finally:
        if proc.poll() is None:
            proc.kill()
        tree.close()
    running = [s for s in samples if s[0] <= ended]
    assert len(running) >= SECONDS, len(running)  # repaints keep coming (4 a second idle)
    for when, shown, root, rows, figure in samples:
        assert shown == root == rows == figure, (when, shown, root, rows, figure)
    assert all(header == chart for header, chart in peaks)  # the chart's max is the peak
    assert max(s[2] for s in samples) < 140 * 2 ** 20  # the pool's ~125 MiB, never a multiple
    gaps = [b[0] - a[0] for a, b in zip(running, running[1:], strict=False)]
    assert max(gaps) < GAP_LIMIT, max(gaps)
    assert final[0] == final[1]  # the whole stream read: the tree is the reader's total


def parse_bytes(text: str) -> int:
    number, unit = text.split()
    return int(float(number) * UNITS[unit])


HEADER = re.compile(r"running (\d+\.\d)s\s+heap ([\d.]+ (?:B|KiB|MiB|GiB))")
TOP_ROW = re.compile(r"^\s+([\d.]+ (?:B|KiB|MiB|GiB))\s+\S+ \S+\s+[\d.]+%\s+[\d,]+  [▶▼ ] \[")


def top_rows(screen: str) -> list[int]:
    return [parse_bytes(m.group(1)) for line in screen.splitlines() if (m := TOP_ROW.match(line))]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is required")
def test_churn_in_a_terminal_rows_add_up_and_the_clock_moves(tmp_path, mt):
    cmd = " ".join(shlex.quote(a) for a in (*MEMTRACE, "live",
                                            "--native", str(CHURN), str(SECONDS)))
    t = Tmux(cmd, tmp_path, dict(mt.env, XDG_CACHE_HOME=str(tmp_path / "cache")),
             size=(100, 30))
    try:
        t.wait_for(r"running")
        seen: list[tuple[float, float]] = []  # (when, clock on screen)
        checked = 0
        torn: list[str] = []
        deadline = time.monotonic() + SECONDS + 30
        while time.monotonic() < deadline:
            screen = t.screen()
            head = HEADER.search(screen.splitlines()[0])
            if head is None:
                break  # exited
            clock, heap = float(head.group(1)), parse_bytes(head.group(2))
            seen.append((time.monotonic(), clock))
            rows = top_rows(screen)
            # tmux 3.3 has no synchronized output: a capture can land in the middle of one
            # frame's bytes (new header, old rows); a screen seen twice in a row is whole
            again = t.screen()
            head_again = HEADER.search(again.splitlines()[0])
            stable = (head_again is not None and rows == top_rows(again)
                      and parse_bytes(head_again.group(2)) == heap)
            if heap > 2 ** 20 and rows and stable:
                # every top row is on screen (a handful); each is rounded to 0.1 of its unit
                slack = len(rows) * 0.05 * 2 ** 20 + 1024
                if abs(sum(rows) - heap) <= slack:
                    checked += 1
                else:
                    # CI once saw a torn frame twice in a row on a loaded machine (the app's
                    # write held up between the header and the rows). A header out of step
                    # with its rows would show on many samples, not once in a while;
                    # the headless test above checks every repaint exactly.
                    torn.append(screen)
            time.sleep(0.2)
        assert "exited with status 0" in t.wait_for(r"exited with status 0", timeout=30)
        assert checked >= SECONDS, checked  # about 5 samples a second when idle
        assert len(torn) <= max(1, checked // 20), torn
        stalls = []
        since = seen[0]
        for when, clock in seen[1:]:
            if clock != since[1]:
                stalls.append(when - since[0])
                since = (when, clock)
        assert stalls and max(stalls) < GAP_LIMIT + 0.2, max(stalls)
        t.keys("q")
        t.wait_for(r"EXIT=0")
    finally:
        t.close()
