"""A program killed with SIGKILL mid-run leaves a readable, incomplete, consistent capture."""

from __future__ import annotations

import signal

from tests.tracer import tracer_support as ts

KILLED_SCRIPT = """\
import os
import signal
import time

import mtext


def before_pause():
    mtext.keep_blocks(4, 60013)  # @flushed


def after_pause():
    for _ in range(200):
        mtext.keep_blocks(10, 50021)  # @cut


before_pause()
time.sleep(1.0)  # long enough for the writer thread to flush everything above
after_pause()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkilled_capture_is_readable_and_consistent(tmp_path, mt):
    run = mt.trace(tmp_path, KILLED_SCRIPT, timeout=60)
    assert run.proc.returncode == -signal.SIGKILL
    assert run.capture.exists()
    reader = run.reader
    assert not reader.complete
    assert reader.trailer is None
    stats = run.stats
    assert stats["complete"] is False
    # everything allocated before the pause was flushed and read back exactly
    flushed = ts.totals_at(reader, "before_pause", run.lines["flushed"])
    assert flushed.as_expect() == ts.Expect(4, 4 * 60013, 4, 4 * 60013)
    # after it: whatever made it is a whole number of the same blocks, none lost half-way
    cut = ts.totals_at(reader, "after_pause", run.lines["cut"])
    assert 0 <= cut.count <= 2000
    assert cut.bytes == cut.count * 50021
    assert (cut.leaked_count, cut.leaked_bytes) == (cut.count, cut.bytes)
    # the totals agree with the per-stack counters up to the last record read
    sums = [0, 0, 0, 0]
    for sid in range(reader.n_stacks):
        for i, value in enumerate(reader.stack_counters(sid)[:4]):
            sums[i] += value
    assert sums == [
        reader.total_allocated_bytes,
        reader.total_allocations,
        reader.heap_bytes,
        reader.heap_allocations,
    ]
    assert stats["total_allocations"] == reader.total_allocations
    assert stats["leaked_bytes"] == reader.heap_bytes
