"""A commit cut into many short steps gives exactly the numbers of one commit made at once.

The live feed commits a model update in steps of a few milliseconds (the session lock is let
go between them, so a key press waits for one step, not for the whole commit); between the
steps the UI repaints from what is visible. On a real stream (issue 18's churn program:
random call depths, random frees, a bounded pool, traced with `--native`), fed to two trees
in the same pieces: one commits every update at once, the other in steps with no time
budget at all (each step does the least it can). After every update both trees hold the
same numbers in every node, location and thread; between the steps the split tree still
shows its previous commit, exactly (the root equals the header at every repaint).
"""

from __future__ import annotations

from pathlib import Path

from memtrace_core.model.build import call_tree
from memtrace_core.reader import StreamReader, capture_stream, read_names

CHURN = Path(__file__).parents[2] / "benchmarks" / "workloads" / "churn_tree.py"
PIECE = 16 * 1024  # bytes fed between updates


def shown(tree) -> tuple:
    """What a repaint can read: the root, every thread's totals, every location (by frame
    id: the two trees intern the same frames in the same order, checked)."""
    core = tree.core
    locations = {fid: core.location(fid) for fid in core.locations(1, 1)}
    return tuple(tree.root.total), core.thread_totals(), locations


def nodes(tree) -> dict:
    """Every live node's counters by its path of frame ids."""
    core = tree.core
    return {core.path(nid): tuple(core.total(nid))
            for nid in range(core.n_nodes) if core.alive(nid)}


def test_commit_in_steps_equals_commit_at_once(mt, tmp_path):
    capture = tmp_path / "churn.mtrace"
    proc = mt.cli("run", "--native", "-o", str(capture), "--force", str(CHURN), "1.5", "3000",
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    names = read_names(capture)
    at_once_reader, split_reader = StreamReader(), StreamReader()
    at_once = call_tree(at_once_reader, native=True, names="off", embedded=names)
    split = call_tree(split_reader, native=True, names="off", embedded=names)
    updates = steps = pushed_between = changed = 0
    before = shown(split)
    try:
        for piece in capture_stream(capture, chunk=PIECE):
            at_once_reader.feed(piece)
            split_reader.feed(piece)
            at_once.update()
            split.begin()
            while not split.step(0.0):
                steps += 1
                if not split.core.committed:  # not committed yet: the last commit shows
                    if steps % 4:
                        assert split.root.total == list(before[0])
                    else:
                        assert shown(split) == before
                    pushed_between += split.core.phase == 6  # between push steps
            updates += 1
            assert len(split.frames) == len(at_once.frames)
            now = shown(split)
            assert now == shown(at_once)
            assert list(now[0]) == split.whole_counters()  # the root equals the header
            changed += now != before
            before = now
            if updates % 4 == 0:
                assert nodes(split) == nodes(at_once)
        assert split.frames == at_once.frames
        assert nodes(split) == nodes(at_once)
    finally:
        at_once.close()
        split.close()
    assert split_reader.complete and split_reader.n_stacks > 1000
    assert split_reader.total_frees > 1000  # random frees: counters go down as well as up
    assert changed > 5 and steps > 10 * updates and pushed_between > 0
