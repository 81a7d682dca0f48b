"""`--all-processes`: a `--follow-fork` run's captures (FILE and FILE.PID) merged into one
report, by frame. Pool workers under spawn (each its own interpreter, its own address
layout) and under fork (children that carry the parent's stack) each leak a known number of
bytes through the same named Python function and C function: the merged tree has them in
one node, exactly the sum, with the C function named through each process's own maps; the
merged root is the sum of every capture's own figures."""

from __future__ import annotations

import json
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
    mtext.keep_blocks(2, 50003)  # @parent
    pool = multiprocessing.Pool(2, initializer=worker_leak)
    print(pool.map(square, range(4)))
    pool.close()
    pool.join()
"""


def _nodes(tree: dict):
    """Every node of a `tree --json` document, depth first."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        todo.extend(node.get("children", []))


def _tree(mt, capture: Path, *options: str) -> dict:
    out = mt.cli("tree", "--json", *options, str(capture), cwd=capture.parent)
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_pool_workers_merge_into_one_node(tmp_path, mt, method):
    run = mt.trace(tmp_path, POOL, method, options=("--follow-fork", "--native"),
                   timeout=180).check()
    children = sorted(tmp_path.glob("prog.mtrace.*"))
    assert len(children) >= 2, run.proc.stderr.decode()  # spawn: + the resource tracker

    merged = _tree(mt, run.capture, "--leaks", "--all-processes")
    alone = [_tree(mt, path, "--leaks") for path in [run.capture, *children]]
    # the merged root is every process's own root, summed
    assert merged["total_bytes"] == sum(t["total_bytes"] for t in alone)
    assert merged["total_allocations"] == sum(t["total_allocations"] for t in alone)
    assert merged["total_bytes"] > 0 and merged["native"] is True

    # both workers' leak in one Python node, exactly
    workers = [n for n in _nodes(merged) if n.get("function") == "worker_leak"
               and n.get("line") == run.lines["worker"]]
    assert len(workers) == 1, workers
    assert (workers[0]["bytes"], workers[0]["count"]) == (2 * 3 * 70001, 6)
    # under it, the C function that called malloc, named in every process
    named = [n for n in _nodes(workers[0]) if n.get("function") == "keep_blocks"]
    assert named and sum(n["bytes"] for n in named) == 6 * 70001, workers[0]
    assert all(n.get("kind") == "native" for n in named)
    assert not [n for n in _nodes(merged) if "+0x" in (n.get("function") or "")
                and "mtext" in (n.get("function") or "")]
    # the parent's own leak is there once, with its own figures
    parents = [n for n in _nodes(merged) if n.get("line") == run.lines["parent"]
               and n.get("function") == "<module>"]
    assert parents and parents[0]["bytes"] >= 2 * 50003


def test_table_and_errors(tmp_path, mt):
    run = mt.trace(tmp_path, POOL, "fork", options=("--follow-fork",), timeout=180).check()
    out = mt.cli("table", "--json", "--leaks", "--all-processes", str(run.capture),
                 cwd=tmp_path)
    assert out.returncode == 0, out.stderr.decode()
    rows = json.loads(out.stdout)["rows"]
    leak = [r for r in rows if r["function"] == "worker_leak"]
    assert leak and (leak[0]["total_bytes"], leak[0]["total_count"]) == (6 * 70001, 6), leak
    # an empty child capture (a worker killed while it started) is skipped, and said
    (tmp_path / "prog.mtrace.99999999").write_bytes(b"")
    out = mt.cli("tree", "--all-processes", str(run.capture), cwd=tmp_path)
    assert out.returncode == 0 and b"skipped" in out.stderr and b"empty file" in out.stderr
    # a capture that is not there: one line, whichever way it is opened
    for how in (("tree",), ("view",), ("view", "--follow")):
        out = mt.cli(*how, "--all-processes", str(tmp_path / "missing.mtrace"), cwd=tmp_path)
        assert out.returncode != 0 and b"Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.decode().strip().splitlines()) == 1, out.stderr


def _stats(mt, capture: Path, *options: str) -> dict:
    out = mt.cli("stats", "--json", *options, str(capture), cwd=capture.parent)
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


def test_stats_all_processes_sums_every_process(tmp_path, mt):
    run = mt.trace(tmp_path, POOL, "fork", options=("--follow-fork", "--native"),
                   timeout=180).check()
    children = sorted(tmp_path.glob("prog.mtrace.*"))
    assert len(children) == 2, run.proc.stderr.decode()
    merged = _stats(mt, run.capture, "--all-processes", "--top", "0")
    alone = [_stats(mt, path, "--top", "0") for path in [run.capture, *children]]

    # each process with its own figures, the program first
    assert [p["pid"] for p in merged["processes"]] == [s["pid"] for s in alone]
    assert [p["parent_pid"] for p in merged["processes"]] == [None] + [alone[0]["pid"]] * 2
    for p, s in zip(merged["processes"], alone, strict=True):
        assert (p["total_allocated_bytes"], p["peak_bytes"], p["leaked_bytes"]) == (
            s["total_allocated_bytes"], s["peak_bytes"], s["leaked_bytes"])
        assert p["complete"] and p["exit_code"] == 0
    # all of them together: exact sums
    for key in ("total_allocated_bytes", "total_allocations", "total_frees",
                "leaked_bytes", "leaked_allocations", "records"):
        assert merged[key] == sum(s[key] for s in alone), key
    for name, v in merged["allocators"].items():
        assert v["count"] == sum(s["allocators"].get(name, {"count": 0})["count"]
                                 for s in alone)
        assert v["bytes"] == sum(s["allocators"].get(name, {"bytes": 0})["bytes"]
                                 for s in alone)
    assert sum(h["count"] for h in merged["size_histogram"]) == merged["total_allocations"]
    # the heaps summed at their samples: at least each one's own peak, at most all of them
    assert max(s["peak_bytes"] for s in alone) <= merged["peak_bytes"]
    assert merged["peak_bytes"] <= sum(s["peak_bytes"] for s in alone)

    # both workers' leak at one Python location, exactly; the C function that called
    # malloc holds the parent's blocks and the workers', named
    leaks = [loc for loc in merged["top_leaking_locations"]
             if loc["function"] == "worker_leak" and loc["line"] == run.lines["worker"]]
    assert [(loc["leaked_bytes"], loc["leaked_count"]) for loc in leaks] == [(6 * 70001, 6)]
    native = [loc for loc in merged["top_native_locations"] if loc["function"] == "keep_blocks"]
    assert len(native) == 1, merged["top_native_locations"][:5]
    assert (native[0]["leaked_bytes"], native[0]["leaked_count"]) == (
        6 * 70001 + 2 * 50003, 8)

    # the human report: every process in its table, the peak said to be a sum
    out = mt.cli("stats", "--all-processes", str(run.capture), cwd=tmp_path)
    text = out.stdout.decode()
    assert out.returncode == 0, out.stderr.decode()
    assert "processes      3:" in text and "all processes at once" in " ".join(text.split())
    # the program's own report points to them
    alone_text = mt.cli("stats", str(run.capture), cwd=tmp_path).stdout.decode()
    assert "`stats --all-processes` adds them up" in " ".join(alone_text.split())
    assert "adds them up" not in " ".join(text.split())
    assert all(str(s["pid"]) in text for s in alone)
    missing = mt.cli("stats", "--all-processes", str(tmp_path / "missing.mtrace"), cwd=tmp_path)
    assert missing.returncode != 0 and b"Traceback" not in missing.stderr
    assert len(missing.stderr.decode().strip().splitlines()) == 1, missing.stderr


def test_stats_all_processes_marks_sampled_figures(tmp_path, mt):
    run = mt.trace(tmp_path, POOL, "fork", options=("--follow-fork", "--sample", "64KiB"),
                   timeout=180).check()
    pids = [_stats(mt, path)["pid"] for path in sorted(tmp_path.glob("prog.mtrace.*"))]
    assert len(pids) == 2
    merged = _stats(mt, run.capture, "--all-processes")
    assert merged["sampled"] == 65536 and len(merged["processes"]) == 3
    text = mt.cli("stats", "--all-processes", str(run.capture), cwd=tmp_path).stdout.decode()
    rows = [line for line in text.splitlines() if any(f"│ {pid} │" in line for pid in pids)]
    # each worker's own figures are estimates too: allocated, peak and leaked marked
    assert len(rows) == 2 and all(line.count("≈") == 3 for line in rows), text
