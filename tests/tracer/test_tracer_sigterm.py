"""A traced process ended by SIGTERM's default action (`kill`, a Pool's terminate()) loses
nothing: what was still buffered and the trailer (exit code -15) are written before the
default action ends it, with the same status as untraced. A program's own SIGTERM handler,
or SIG_IGN, is left alone. `with Pool(...)` workers (terminated at the end of the block)
each hold exactly what their tasks kept, under every start method."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memtrace_core.reader import COMPRESSED_MAGIC, read_capture
from tests.cli import MEMTRACE
from tests.tracer import tracer_support as ts

KILLED = """\
import os
import signal
import sys
import time

if sys.argv[1] == "handler":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))
elif sys.argv[1] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def keep():
    blocks = []
    for i in range(5):
        blocks.append(bytearray(1_000_000 + i))  # @keep
    return blocks


kept = keep()
print("ready", flush=True)
if sys.argv[1] == "ignore":
    os.kill(os.getpid(), signal.SIGTERM)  # ignored: carries on
    print("still here", flush=True)
    sys.exit(0)
while True:
    time.sleep(0.01)
"""


def _run_until_ready(mt, directory: Path, how: str, traced: bool) -> subprocess.Popen:
    script = directory / "killed.py"
    script.write_text(KILLED)
    command = ([*MEMTRACE, "run", "-o", "killed.mtrace",
                "killed.py", how] if traced else [sys.executable, "killed.py", how])
    proc = subprocess.Popen(command, cwd=directory, env=mt.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n", proc.stderr.read() if proc.stderr else b""
    time.sleep(0.05)  # the records of keep() are still in the buffer: no flush yet
    return proc


@pytest.mark.parametrize(("how", "status", "exit_code"),
                         [("default", -signal.SIGTERM, -15), ("handler", 3, 3)])
def test_sigterm_keeps_everything_and_the_status(tmp_path, mt, how, status, exit_code):
    plain = _run_until_ready(mt, tmp_path, how, traced=False)
    plain.send_signal(signal.SIGTERM)
    assert plain.wait(timeout=30) == status
    for attempt in range(5):
        directory = tmp_path / str(attempt)
        directory.mkdir()
        proc = _run_until_ready(mt, directory, how, traced=True)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == status  # as untraced
        reader = read_capture(directory / "killed.mtrace")
        assert reader.complete and reader.trailer["exit_code"] == exit_code
        kept = ts.live_at(reader, "keep", mt.marker_lines(KILLED)["keep"])
        assert sorted(s for _a, s, _k in kept) == [1_000_001 + i for i in range(5)]


def test_an_ignored_sigterm_stays_ignored(tmp_path, mt):
    run = mt.trace(tmp_path, KILLED, "ignore").check()
    assert run.proc.stdout == b"ready\nstill here\n"
    assert run.reader.complete and run.reader.trailer["exit_code"] == 0


POOL = """\
import multiprocessing
import sys

import mtext


def task_leak(i):
    mtext.keep_blocks(2, 50021 + i)  # @task
    return i


if __name__ == "__main__":
    with multiprocessing.get_context(sys.argv[1]).Pool(2) as pool:
        print(sorted(pool.map(task_leak, range(6), chunksize=1)))
"""


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_with_pool_workers_terminated_keep_every_task(tmp_path, mt, method):
    """The pool's __exit__ terminates its workers (SIGTERM) right after the last task."""
    run = mt.trace(tmp_path, POOL, method, options=("--follow-fork",), timeout=120).check()
    assert run.proc.stdout == mt.plain("prog.py", method, cwd=tmp_path).stdout
    kept: list[int] = []
    workers = 0
    for path in sorted(tmp_path.glob("prog.mtrace.*")):
        if path.stat().st_size <= len(COMPRESSED_MAGIC):
            # A worker terminated while it was starting: before its capture was written at
            # all, or after the magic and before the header was flushed. It ran no task.
            continue
        reader = read_capture(path)
        sizes = [s for _a, s, _k in ts.live_at(reader, "task_leak", run.lines["task"])]
        if sizes:
            workers += 1
            assert reader.complete, path
            assert reader.trailer["exit_code"] in (0, -15), reader.trailer
        kept += sizes
    assert sorted(kept) == sorted([50021 + i for i in range(6)] * 2)
    assert workers >= 1
