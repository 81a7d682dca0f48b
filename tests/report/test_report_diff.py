"""`memtrace diff`: two runs of one program that differ by a known leak, and two instants of
one capture, give exactly that leak on its locations and nothing elsewhere."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.report.report_support import LEAK_BLOCKS, c_markers, py_markers

PROGRAM = """\
import os
import sys
import time

import mtreport

keep = []


def leak_py(n):
    keep.extend([bytearray(1_000_000) for _ in range(n)])  # @py_leak


mtreport.leak()  # @first
leak_py(2)  # @first_py
with open(sys.argv[1], "w") as f:
    f.write(repr(time.time()))
time.sleep(0.6)
for _ in range(int(os.environ["EXTRA"])):
    mtreport.leak()  # @extra
    leak_py(1)  # @extra_py
"""
BLOCK = 1_000_001  # bytearray(1_000_000) keeps a trailing NUL


def _trace(reports, report_ext, directory: Path, extra: int, *options: str):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "prog.py").write_text(PROGRAM)
    runner = reports.with_path(report_ext.parent)
    runner.env["EXTRA"] = str(extra)
    capture = directory / f"extra{extra}.mtrace"
    runner.ok("run", *options, "-o", str(capture), "--force", "prog.py",
              str(directory / f"t{extra}"), cwd=directory)
    return capture, float((directory / f"t{extra}").read_text())


def _diff(reports, tmp_path, *args: str) -> list[dict]:
    proc = reports.ok("diff", *args, "--json", cwd=tmp_path)
    return json.loads(proc.stdout)


def _by_line(rows: list[dict]) -> dict[tuple[str, int], dict]:
    return {(Path(r["file"]).name, r["line"]): r for r in rows}


@pytest.fixture(scope="module")
def py_runs(reports, report_ext, tmp_path_factory):
    directory = tmp_path_factory.mktemp("diff-py")
    return directory, _trace(reports, report_ext, directory, 0), _trace(
        reports, report_ext, directory, 2)


def test_two_runs_differ_by_exactly_the_leak(reports, py_runs):
    directory, (zero, _), (two, _) = py_runs
    marks = py_markers(PROGRAM)
    rows = _diff(reports, directory, str(zero), str(two))
    got = _by_line(rows)
    assert set(got) == {("prog.py", marks["extra"]), ("prog.py", marks["py_leak"])}, rows
    c_leak = got["prog.py", marks["extra"]]
    assert (c_leak["delta_bytes"], c_leak["delta_count"]) == (2 * sum(LEAK_BLOCKS), 6)
    assert (c_leak["before_bytes"], c_leak["after_bytes"]) == (0, 2 * sum(LEAK_BLOCKS))
    assert c_leak["function"] == "<module>" and c_leak["kind"] == "python"
    py_leak = got["prog.py", marks["py_leak"]]
    assert (py_leak["delta_bytes"], py_leak["delta_count"]) == (2 * BLOCK, 2)
    assert (py_leak["before_bytes"], py_leak["after_bytes"]) == (2 * BLOCK, 4 * BLOCK)
    # the comprehension's own frame before 3.12: "leak_py.<locals>.<listcomp>" from 3.11,
    # plain "<listcomp>" on 3.10 (code objects have no qualified name there)
    comprehension = "<listcomp>" if sys.version_info < (3, 11) else "leak_py"
    assert py_leak["function"].startswith(comprehension)
    # largest growth first
    assert rows[0] is not None and rows[0]["delta_bytes"] == max(r["delta_bytes"] for r in rows)
    # the other way round: the same locations shrink
    back = _by_line(_diff(reports, directory, str(two), str(zero)))
    assert {k: (r["delta_bytes"], r["delta_count"]) for k, r in back.items()} == {
        k: (-r["delta_bytes"], -r["delta_count"]) for k, r in got.items()}
    # --all lists the unchanged locations too, with a zero change
    everything = _by_line(_diff(reports, directory, str(zero), str(two), "--all"))
    first = everything["prog.py", marks["first"]]
    assert (first["delta_bytes"], first["before_bytes"], first["after_bytes"]) == (
        0, sum(LEAK_BLOCKS), sum(LEAK_BLOCKS))


def test_two_instants_of_one_capture(reports, py_runs):
    directory, _, (two, marked) = py_runs
    from memtrace_core.reader import read_capture

    start = read_capture(two).header["start_time"]
    middle = f"{marked - start + 0.3:.3f}"  # inside the program's 0.6 s sleep
    marks = py_markers(PROGRAM)
    rows = _diff(reports, directory, str(two), "--from", middle, "--to", "end")
    # the program's own lines; allocations without a Python stack (the interpreter's
    # shutdown frees some) are real changes between two instants, but not the program's
    got = _by_line([r for r in rows if r["file"].endswith("prog.py")])
    assert {k: (r["delta_bytes"], r["delta_count"]) for k, r in got.items()} == {
        ("prog.py", marks["extra"]): (2 * sum(LEAK_BLOCKS), 6),
        ("prog.py", marks["py_leak"]): (2 * BLOCK, 2),
    }
    # from the start to that instant: what the program kept before it
    early = _by_line(_diff(reports, directory, str(two), "--to", middle))
    assert (early["prog.py", marks["first"]]["delta_bytes"],
            early["prog.py", marks["py_leak"]]["after_bytes"]) == (sum(LEAK_BLOCKS), 2 * BLOCK)
    assert ("prog.py", marks["extra"]) not in early


def test_native_tree_diff_names_the_c_frames(reports, report_ext, tmp_path):
    zero, _ = _trace(reports, report_ext, tmp_path / "a", 0, "--native")
    two, _ = _trace(reports, report_ext, tmp_path / "b", 2, "--native")
    cmarks = c_markers()
    rows = _diff(reports, tmp_path, str(zero), str(two))
    leak = [r for r in rows if r["kind"] == "inline" and r["line"] == cmarks["inline_malloc"]]
    assert len(leak) == 1, rows
    assert (leak[0]["function"], leak[0]["delta_bytes"], leak[0]["delta_count"]) == (
        "rep_inline_alloc", 2 * sum(LEAK_BLOCKS), 6)
    tree = _diff(reports, tmp_path, str(zero), str(two), "--tree")
    path, node = [], {"children": tree}
    while node["children"]:  # follow the largest growth down
        node = node["children"][0]
        path.append(node["function"])
    assert path[-3:] == ["rep_outer", "rep_middle", "rep_inline_alloc"], path
    assert "<module>" in path and node["delta_bytes"] == 2 * sum(LEAK_BLOCKS)


def test_bad_input_is_one_line(reports, py_runs, tmp_path):
    directory, (zero, _), _ = py_runs
    for args, message in [
        ((str(zero),), "give a second capture"),
        ((str(zero), "--from", "soon"), "bad --from 'soon'"),
        ((str(tmp_path / "missing.mtrace"), str(zero)), "no such file"),
    ]:
        proc = reports.cli("diff", *args, cwd=directory)
        err = proc.stderr.decode()
        assert proc.returncode != 0 and message in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_different_programs_warn_in_one_line(reports, py_runs, tmp_path):
    directory, (zero, _), _ = py_runs
    other = tmp_path / "other.py"
    other.write_text("x = bytearray(5000)\n")
    capture = tmp_path / "other.mtrace"
    reports.ok("run", "-o", str(capture), "--force", str(other), cwd=tmp_path)
    proc = reports.ok("diff", str(zero), str(capture), cwd=directory)
    err = proc.stderr.decode()
    assert "different programs" in err and "Traceback" not in err, err
    assert "[py]" in proc.stdout.decode() and sys.executable  # the report is still printed
