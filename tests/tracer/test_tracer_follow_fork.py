"""`memtrace run --follow-fork`: child processes are traced too, each into FILE.PID next to
the parent's capture, with exact figures at the child's own named function: multiprocessing
Pool workers under every start method, an os.fork() child and a subprocess running this
same interpreter. Without the flag only the parent is traced, and its capture says how many
children ran untraced."""

from __future__ import annotations

from pathlib import Path

import pytest

POOL = """\
import multiprocessing
import sys

import mtext


def worker_leak():
    mtext.keep_blocks(3, 70001)  # @worker


def square(x):
    return x * x


if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[1])
    pool = multiprocessing.Pool(2, initializer=worker_leak)
    print(pool.map(square, range(4)))
    pool.close()
    pool.join()
"""

FORK_AND_EXEC = """\
import os
import subprocess
import sys

import mtext


def child_leak():
    mtext.keep_blocks(5, 80021)  # @child


def parent_leak():
    mtext.keep_blocks(2, 90007)  # @parent


parent_leak()
pid = os.fork()
if pid == 0:
    child_leak()
    os._exit(0)
os.waitpid(pid, 0)
code = ("import mtext, sys\\ndef sub_leak():\\n    mtext.keep_blocks(7, 60013)\\nsub_leak()\\n"
        "print(sys.argv, repr(sys.path[0]), sorted(globals()))\\n")
done = subprocess.run([sys.executable, "-c", code, "arg"], capture_output=True)
print("done", done.returncode, done.stdout, done.stderr)
subprocess.run(["true"])  # not Python: runs untraced, counted
"""


def _captures(capture: Path) -> list[Path]:
    return sorted(capture.parent.glob(capture.name + ".*"))


def _leak_at(mt, path: Path, function: str, line: int) -> tuple[int, int] | None:
    stats = mt.stats(path)
    for entry in stats["top_locations"]:
        if entry["function"] == function and entry["line"] == line:
            return entry["leaked_bytes"], entry["leaked_count"]
    return None


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_pool_workers_each_in_their_own_capture(tmp_path, mt, method):
    run = mt.trace(tmp_path, POOL, method, options=("--follow-fork",), timeout=120).check()
    plain = mt.plain("prog.py", method, cwd=tmp_path)
    assert run.proc.stdout == plain.stdout == b"[0, 1, 4, 9]\n"
    children = _captures(run.capture)
    assert children, run.proc.stderr.decode()
    # the parent names its children's captures, and `stats` lists them
    said = run.proc.stderr.decode()
    assert all(str(path) in said for path in children), said
    assert run.stats["child_captures"] == [str(p) for p in children]
    workers = {path: _leak_at(mt, path, "worker_leak", run.lines["worker"])
               for path in children}
    leaking = {path: figures for path, figures in workers.items() if figures}
    assert sorted(leaking.values()) == [(3 * 70001, 3)] * 2, workers
    for path in leaking:
        stats = mt.stats(path)
        assert stats["complete"] is True and stats["exit_code"] == 0
        assert stats["parent_pid"] is not None and stats["pid"] == int(path.suffix[1:])
    # the parent did not run the initializer itself
    assert _leak_at(mt, run.capture, "worker_leak", run.lines["worker"]) is None


def test_fork_and_subprocess_children(tmp_path, mt):
    run = mt.trace(tmp_path, FORK_AND_EXEC, options=("--follow-fork",), timeout=120).check()
    plain = mt.plain("prog.py", cwd=tmp_path)
    # the exec'd child sees the argv, sys.path[0] and __main__ python gives it
    assert run.proc.stdout == plain.stdout and plain.stdout.startswith(b"done 0 b\"['-c', 'arg']")
    children = _captures(run.capture)
    assert len(children) == 2, children
    parent = mt.stats(run.capture)
    assert _leak_at(mt, run.capture, "parent_leak", run.lines["parent"]) == (2 * 90007, 2)
    assert _leak_at(mt, run.capture, "child_leak", run.lines["child"]) is None
    forked, spawned = sorted(children, key=lambda p: mt.stats(p)["command"].endswith("arg"))
    assert _leak_at(mt, forked, "child_leak", run.lines["child"]) == (5 * 80021, 5)
    assert _leak_at(mt, spawned, "sub_leak", 3) == (7 * 60013, 7)
    assert mt.stats(spawned)["command"].endswith(" arg")
    for path in children:
        stats = mt.stats(path)
        assert stats["complete"] is True and stats["exit_code"] == 0
        assert stats["parent_pid"] == parent["pid"]
    assert parent["untraced_children"] == 1  # `true`


def test_without_the_flag_only_the_parent(tmp_path, mt):
    run = mt.trace(tmp_path, FORK_AND_EXEC, timeout=120).check()
    assert run.proc.stdout == mt.plain("prog.py", cwd=tmp_path).stdout
    assert _captures(run.capture) == []
    assert run.stats["child_captures"] == []
    # the fork, the Python subprocess and `true`: counted, and stats suggests the flag
    assert run.stats["untraced_children"] == 3
    human = mt.cli("stats", str(run.capture), cwd=tmp_path).stdout.decode()
    assert "3 child processes ran untraced (memtrace run --follow-fork traces them)" in human
    assert _leak_at(mt, run.capture, "parent_leak", run.lines["parent"]) == (2 * 90007, 2)


LEAVES_EARLY = """\
import subprocess
import sys

# a Python child that outlives this parent: it is still starting up when the parent exits
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"])
print(child.pid)
"""


def test_a_child_still_starting_at_exit_is_named(tmp_path, mt):
    """The parent's list of its children's captures waits for a traced child that is still
    starting (multiprocessing's resource tracker under load was missed that way)."""
    run = mt.trace(tmp_path, LEAVES_EARLY, options=("--follow-fork",), timeout=120).check()
    pid = int(run.proc.stdout)
    expected = f"{run.capture}.{pid}"
    assert expected in run.proc.stderr.decode(), run.proc.stderr.decode()
