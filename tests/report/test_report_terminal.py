"""`memtrace table`, `tree` and `stats` on real captures: exact totals against the reader,
frame kinds marked in text and coloured apart, native locations named."""

from __future__ import annotations

import json
import re

import pytest

from tests.report.report_support import LEAK_BLOCKS, SCRATCH_BLOCKS, SOURCE, SPIKE, c_markers

SELECTIONS = {"all": (), "leaks": ("--leaks",), "peak": ("--peak",)}
NATIVE_RGB = "38;2;95;175;255"  # KIND_COLOURS native #5fafff as a truecolor escape
PYTHON_RGB = "38;2;95;215;95"  # #5fd75f


def reader_totals(reader, selection: str) -> tuple[int, int]:
    return {
        "all": (reader.total_allocated_bytes, reader.total_allocations),
        "leaks": (reader.heap_bytes, reader.heap_allocations),
        "peak": (reader.peak_bytes, reader.peak_allocations),
    }[selection]


def table_json(reports, capture, *options: str) -> dict:
    proc = reports.ok("table", "--json", "-n", "0", *options, str(capture.path),
                      cwd=capture.path.parent)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("which", ["native", "python"])
@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_table_json_totals_equal_reader(reports, native_capture, py_capture, which, selection):
    capture = native_capture if which == "native" else py_capture
    doc = table_json(reports, capture, *SELECTIONS[selection])
    nbytes, count = reader_totals(capture.reader, selection)
    assert (doc["total_bytes"], doc["total_allocations"]) == (nbytes, count)
    assert doc["selection"] == selection and doc["native"] is capture.native
    # own bytes partition the selection: every allocation is owned by one location
    assert sum(r["own_bytes"] for r in doc["rows"]) == nbytes
    assert sum(r["own_count"] for r in doc["rows"]) == count
    assert all(r["total_bytes"] >= r["own_bytes"] for r in doc["rows"])
    if which == "python":
        assert {r["kind"] for r in doc["rows"]} <= {"python", "nosymbol"}  # <no stack>


def test_table_native_rows_and_sorting(reports, native_capture):
    doc = table_json(reports, native_capture, "--leaks")
    rows = {r["function"]: r for r in doc["rows"]}
    c = c_markers()
    inline = rows["rep_inline_alloc"]
    assert (inline["kind"], inline["file"], inline["line"]) == (
        "inline", str(SOURCE), c["inline_malloc"])
    assert (inline["own_bytes"], inline["own_count"]) == (sum(LEAK_BLOCKS), len(LEAK_BLOCKS))
    assert rows["rep_outer"]["kind"] == "native"
    assert rows["rep_outer"]["own_bytes"] == 0
    assert rows["rep_outer"]["total_bytes"] == sum(LEAK_BLOCKS)
    assert rows["work"]["kind"] == "python"

    every = table_json(reports, native_capture, "--sort", "total")["rows"]
    assert [r["total_bytes"] for r in every] == sorted((r["total_bytes"] for r in every),
                                                       reverse=True)
    by_count = table_json(reports, native_capture, "--sort", "count")["rows"]
    assert [r["own_count"] for r in by_count] == sorted((r["own_count"] for r in by_count),
                                                        reverse=True)
    by_own = table_json(reports, native_capture)["rows"]
    assert by_own[0]["function"] == "rep_spike" and by_own[0]["own_bytes"] == SPIKE
    scratch = next(r for r in by_own if r["function"] == "rep_scratch")
    assert scratch["own_bytes"] == sum(SCRATCH_BLOCKS)


def test_table_text_marks_and_colours(reports, native_capture):
    plain = reports.ok("table", "--leaks", str(native_capture.path),
                       cwd=native_capture.path.parent).stdout.decode()
    assert "\x1b[" not in plain  # piped: no colour, the marks tell the kinds
    line = next(ln for ln in plain.splitlines() if "rep_inline_alloc" in ln)
    assert "[inl]" in line and "creport.c" in line
    assert "[c]" in next(ln for ln in plain.splitlines() if "rep_outer" in ln)
    assert "[py]" in next(ln for ln in plain.splitlines() if " work " in ln)
    assert "[py] Python" in plain and "[c] native" in plain  # the legend

    env = {**reports.env, "FORCE_COLOR": "1", "COLORTERM": "truecolor", "COLUMNS": "200"}
    coloured = reports.__class__(reports.python, env).ok(
        "table", "--leaks", str(native_capture.path), cwd=native_capture.path.parent)
    text = coloured.stdout.decode()
    assert re.search(rf"\x1b\[[0-9;]*{NATIVE_RGB}m[^\x1b]*rep_outer", text)
    assert re.search(rf"\x1b\[[0-9;]*{PYTHON_RGB}m[^\x1b]*work", text)


def _walk(node):
    yield node
    for child in node.get("children", []):
        yield from _walk(child)


@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_tree_json_totals_equal_reader(reports, native_capture, selection):
    proc = reports.ok("tree", "--json", "--threshold", "0", *SELECTIONS[selection],
                      str(native_capture.path), cwd=native_capture.path.parent)
    doc = json.loads(proc.stdout)
    nbytes, count = reader_totals(native_capture.reader, selection)
    assert (doc["total_bytes"], doc["total_allocations"]) == (nbytes, count)
    assert sum(c["bytes"] for c in doc["children"]) == nbytes
    for node in (n for top in doc["children"] for n in _walk(top)):
        kids = node["children"]
        assert node["bytes"] == node["own_bytes"] + sum(k["bytes"] for k in kids)
        assert [k["bytes"] for k in kids] == sorted((k["bytes"] for k in kids), reverse=True)


def test_tree_threshold_folds_small_branches(reports, native_capture):
    proc = reports.ok("tree", "--json", "--threshold", "1MiB", str(native_capture.path),
                      cwd=native_capture.path.parent)
    doc = json.loads(proc.stdout)
    assert doc["threshold_bytes"] == 1 << 20
    shown = [n for top in doc["children"] for n in _walk(top)]
    assert all(n["bytes"] >= 1 << 20 for n in shown)
    hidden = doc.get("hidden", {"bytes": 0})["bytes"]
    assert sum(c["bytes"] for c in doc["children"]) + hidden == doc["total_bytes"]
    names = [n["function"] for n in shown]
    assert "rep_spike" in names and "rep_scratch" in names

    pct = json.loads(reports.ok("tree", "--json", "--threshold", "50%",
                                str(native_capture.path),
                                cwd=native_capture.path.parent).stdout)
    assert pct["threshold_bytes"] == pct["total_bytes"] // 2
    assert "rep_scratch" not in [n["function"] for t in pct["children"] for n in _walk(t)]


def test_tree_text_biggest_first_with_marks(reports, native_capture):
    text = reports.ok("tree", "--peak", str(native_capture.path),
                      cwd=native_capture.path.parent).stdout.decode()
    lines = text.splitlines()
    spike = next(i for i, ln in enumerate(lines) if "rep_spike" in ln)
    leak = next(i for i, ln in enumerate(lines) if "rep_entry" in ln)
    assert spike < leak  # the 64 MiB branch before the 8.6 MiB one
    assert "[c] rep_spike" in lines[spike]
    assert "[inl] rep_inline_alloc" in text
    # a 20% threshold folds the 8.6 MiB branch (11.8%)
    folded = reports.ok("tree", "--peak", "--threshold", "20%", str(native_capture.path),
                        cwd=native_capture.path.parent).stdout.decode()
    assert "rep_spike" in folded and "rep_entry" not in folded
    assert re.search(r"8\.6 MiB .* … \d+ smaller branch", folded)


def test_stats_names_native_locations(reports, native_capture):
    proc = reports.ok("stats", "--json", "--top", "0", str(native_capture.path),
                      cwd=native_capture.path.parent)
    doc = json.loads(proc.stdout)
    rows = doc["top_native_locations"]
    assert {"module", "offset", "build_id", "bytes", "count"} <= set(rows[0])
    by_name = {r["function"]: r for r in rows}
    c = c_markers()
    inline = by_name["rep_inline_alloc"]
    assert (inline["kind"], inline["file"], inline["line"]) == (
        "inline", str(SOURCE), c["inline_malloc"])
    assert inline["bytes"] == sum(LEAK_BLOCKS) and inline["leaked_bytes"] == sum(LEAK_BLOCKS)
    assert by_name["rep_scratch"]["bytes"] == sum(SCRATCH_BLOCKS)
    assert by_name["rep_spike"]["line"] == c["spike_malloc"]
    text = reports.ok("stats", str(native_capture.path),
                      cwd=native_capture.path.parent).stdout.decode()
    assert "rep_spike" in text and "creport.c" in text
