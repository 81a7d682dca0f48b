"""Temporary allocations (`table/tree --temporary`): rep_churn in tests/report/creport.c
frees blocks after 0, 1 and 2 other allocations of its thread, and keeps one block for a
whole round: the counts per C line and per Python line are exact for N = 0, 1 and 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.report.report_support import c_markers, py_markers

ROUNDS = 50
PROGRAM = f"""\
import mtreport

mtreport.churn({ROUNDS})  # @churn
"""
SIZES = {"t_now": 1111, "t_keep": 2221, "t_two": 3331, "t_one": 4441, "t_zero": 5551}


def temporary_lines(threshold: int) -> dict[str, int]:
    """The rep_churn lines whose allocations are temporary at that threshold: bytes."""
    others = {"t_now": 0, "t_two": 2, "t_one": 1, "t_zero": 0}  # allocations before the free
    return {name: ROUNDS * SIZES[name] for name, n in others.items() if n <= threshold}


@pytest.fixture(scope="module")
def churn_captures(reports, report_ext, tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("churn")
    (directory / "churn.py").write_text(PROGRAM)
    runner = reports.with_path(report_ext.parent)
    out = {}
    for mode, options in (("native", ("--native",)), ("python", ())):
        out[mode] = directory / f"{mode}.mtrace"
        runner.ok("run", *options, "-o", str(out[mode]), "--force", "churn.py", cwd=directory)
    return out


def _table(reports, capture: Path, *options: str) -> dict:
    proc = reports.ok("table", str(capture), "--temporary", "--json", "-n", "0", *options,
                      cwd=capture.parent)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("threshold", [0, 1, 3])
def test_native_lines_exact_at_each_threshold(reports, churn_captures, threshold):
    table = _table(reports, churn_captures["native"], "--temporary-threshold", str(threshold))
    assert table["selection"] == "temporary"
    lines = {v: k for k, v in c_markers().items() if k in SIZES}
    got = {lines[r["line"]]: (r["own_bytes"], r["own_count"]) for r in table["rows"]
           if r["function"] == "rep_churn" and r["line"] in lines}
    assert got == {name: (nbytes, ROUNDS) for name, nbytes in temporary_lines(threshold).items()}
    assert "t_keep" not in got  # a block kept for a round is never temporary


def test_python_line_and_tree(reports, churn_captures):
    expected = sum(temporary_lines(1).values())
    table = _table(reports, churn_captures["python"])
    line = py_markers(PROGRAM)["churn"]
    row = [r for r in table["rows"] if r["file"].endswith("churn.py") and r["line"] == line]
    assert [(r["own_bytes"], r["own_count"]) for r in row] == [(expected, 3 * ROUNDS)]
    proc = reports.ok("tree", str(churn_captures["native"]), "--temporary", "--json",
                      cwd=churn_captures["native"].parent)
    tree = json.loads(proc.stdout)

    found, todo = [], [tree]
    while todo:  # every rep_churn node (one per line it allocates at)
        node = todo.pop()
        if node.get("function") == "rep_churn":
            found.append((node["bytes"], node["count"]))
        todo.extend(node.get("children", []))
    total = tuple(map(sum, zip(*found, strict=True)))
    assert len(found) == 3 and total == (expected, 3 * ROUNDS), found


def test_bad_threshold_is_one_line(reports, churn_captures):
    proc = reports.cli("table", str(churn_captures["native"]), "--temporary",
                       "--temporary-threshold", "many", cwd=churn_captures["native"].parent)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "not a count of allocations" in err, err
    assert "Traceback" not in err
