"""A traced program that forks: the child runs normally, the parent's capture stays exact."""

from __future__ import annotations

import pytest

from tests.tracer import tracer_support as ts

FORK_SCRIPT = """\
import os
import sys

import mtext


def parent_before():
    mtext.keep_blocks(3, 70001)  # @before


def child():
    mtext.keep_blocks(5, 80021)  # @child
    print("child", flush=True)
    if sys.argv[1] == "exit":
        sys.exit(7)  # normal interpreter shutdown in the child: atexit handlers run
    os._exit(7)


def parent_after():
    mtext.keep_blocks(2, 90007)  # @after


parent_before()
pid = os.fork()
if pid == 0:
    child()
_, status = os.waitpid(pid, 0)
print("child status", os.waitstatus_to_exitcode(status), flush=True)
parent_after()
print("parent done")
"""


@pytest.mark.parametrize("how", ["exit", "_exit"])
def test_fork_child_runs_parent_capture_exact(tmp_path, mt, how):
    run = mt.trace(tmp_path, FORK_SCRIPT, how, timeout=60).check()
    assert run.proc.stdout == b"child\nchild status 7\nparent done\n"
    reader = run.reader
    assert reader.complete, "the parent's capture lost its trailer"
    assert not reader.truncated
    assert reader.header["pid"] != 0
    assert ts.totals_at(reader, "parent_before", run.lines["before"]).as_expect() == ts.Expect(
        3, 3 * 70001, 3, 3 * 70001
    )
    assert ts.totals_at(reader, "parent_after", run.lines["after"]).as_expect() == ts.Expect(
        2, 2 * 90007, 2, 2 * 90007
    )
    # the child's allocations never reach the parent's stream
    assert ts.totals_at(reader, "child", run.lines["child"]).count == 0
    assert reader.trailer["exit_code"] == 0
    stats = run.stats
    assert stats["complete"] is True
    assert stats["pid"] == reader.header["pid"]
    # no second capture appeared for the child
    assert sorted(p.name for p in tmp_path.glob("*.mtrace")) == [run.capture.name]
