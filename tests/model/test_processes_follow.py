"""MergedReader fed as `view --follow --all-processes` feeds it: each capture's bytes in
pieces, interleaved, a child's capture first seen midway. Stack ids stay what they were as
the readers grow, every stack is reported changed, and the end state is the one read at
once (read_processes), to the byte."""

from __future__ import annotations

from memtrace_core.model.build import call_tree
from memtrace_core.model.metrics import LIVE_BYTES
from memtrace_core.model.processes import MergedReader, read_processes
from memtrace_core.reader import capture_stream, new_reader

FORKS = """\
import os
import mtext


def child_leak():
    mtext.keep_blocks(5, 80021)


def parent_leak():
    mtext.keep_blocks(2, 90007)


parent_leak()
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        child_leak()
        os._exit(0)
    os.waitpid(pid, 0)
"""


def test_fed_in_pieces_equals_read_at_once(tmp_path, mt):
    run = mt.trace(tmp_path, FORKS, options=("--follow-fork",)).check()
    children = sorted(str(p) for p in tmp_path.glob("prog.mtrace.*"))
    assert len(children) == 2
    paths = [str(run.capture), *children]
    streams = {p: b"".join(capture_stream(p)) for p in paths}

    merged = MergedReader([new_reader()], [paths[0]])
    seen: dict[int, tuple] = {}
    changed: set[int] = set()
    step = 4096
    cursor = dict.fromkeys(paths, 0)
    late_from = len(streams[paths[0]]) // 2  # the second child's capture is seen only then
    for offset in range(0, max(len(s) for s in streams.values()) + step, step):
        pieces = []
        for p in paths:
            if p == paths[2] and offset < late_from:
                continue
            data = streams[p][cursor[p]:offset + step]  # a new capture: from its start
            cursor[p] += len(data)
            if data:
                pieces.append((p, data))
        merged.feed(pieces)
        changed.update(merged.take_changed())
        for sid in range(merged.n_stacks):  # ids already given never move
            key = merged.stack_key(sid)
            assert seen.setdefault(sid, key) == key
    assert all(cursor[p] == len(streams[p]) for p in paths)
    merged.finish()
    assert changed == set(range(merged.n_stacks))

    at_once, _names = read_processes(paths[0])
    assert merged.complete and at_once.complete
    assert merged.n_stacks == at_once.n_stacks
    assert merged.heap_bytes == at_once.heap_bytes
    assert merged.total_allocations == at_once.total_allocations
    fed_tree, read_tree = call_tree(merged, names="off"), call_tree(at_once, names="off")
    try:
        for tree in (fed_tree, read_tree):
            tree.rebuild()
        assert fed_tree.root.total[LIVE_BYTES] == read_tree.root.total[LIVE_BYTES] \
            == merged.heap_bytes
        leaks = {n.frame.function: n.total[LIVE_BYTES] for n in fed_tree.walk()
                 if n.frame is not None and n.frame.function.endswith("_leak")}
        assert leaks == {"child_leak": 2 * 5 * 80021, "parent_leak": 2 * 90007}
    finally:
        fed_tree.close()
        read_tree.close()
