"""Folded, speedscope and pprof exports and the flame graph of real captures, checked to
the byte against the C extension's ground truth and the reader's exact totals."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess

import pytest

from memtrace_core.frames import FrameKind
from memtrace_core.report.kinds import KIND_COLOURS
from tests.report.report_support import (
    LEAK_BLOCKS,
    PROGRAM,
    SCRATCH_BLOCKS,
    SOURCE,
    SPIKE,
    c_markers,
    decode_pprof,
    flamegraph_data,
    parse_folded,
    py_markers,
)

SELECTIONS = {"all": (), "leaks": ("--leaks",), "peak": ("--peak",)}


def reader_totals(reader, selection: str) -> tuple[int, int]:
    return {
        "all": (reader.total_allocated_bytes, reader.total_allocations),
        "leaks": (reader.heap_bytes, reader.heap_allocations),
        "peak": (reader.peak_bytes, reader.peak_allocations),
    }[selection]


def leak_tail() -> list[str]:
    """The C part of the leaking path, outermost first, as folded frames."""
    c = c_markers()
    src = str(SOURCE)
    return [f"leak ({src}:{c['entry_call']})",
            f"rep_entry ({src}:{c['outer_call']})",
            f"rep_outer ({src}:{c['middle_call']})",
            f"rep_middle ({src}:{c['inline_call']})",
            f"rep_inline_alloc ({src}:{c['inline_malloc']})_[i]"]


def python_head(capture) -> list[str]:
    prog = capture.path.parent / "prog.py"
    lines = py_markers(PROGRAM)
    return [f"<module> ({prog}:{lines['work']})", f"work ({prog}:{lines['leak']})"]


def folded(reports, capture, *options: str) -> list[tuple[list[str], int]]:
    proc = reports.ok("export", "--format", "folded", *options, str(capture.path),
                      cwd=capture.path.parent)
    return parse_folded(proc.stdout.decode())


def lines_ending(stacks, function: str) -> list[tuple[list[str], int]]:
    return [(s, v) for s, v in stacks if s[-1].split(" (")[0].removesuffix("_[i]") == function]


def test_folded_leaks_exact_bytes_python_then_c_then_inline(reports, native_capture):
    stacks = folded(reports, native_capture, "--leaks")
    hits = lines_ending(stacks, "rep_inline_alloc")
    assert len(hits) == 1, stacks
    stack, value = hits[0]
    assert value == sum(LEAK_BLOCKS)
    assert stack[:2] == python_head(native_capture)
    assert stack[-5:] == leak_tail()
    # between the Python frame and the extension's entry point: interpreter call plumbing
    # only, never another Python frame
    assert not any(f.endswith(".py:" + f.rsplit(":", 1)[-1]) for f in stack[2:-5])
    # the freed scratch blocks and the spike are not leaks
    assert not lines_ending(stacks, "rep_scratch") and not lines_ending(stacks, "rep_spike")
    assert sum(v for _s, v in stacks) == native_capture.reader.heap_bytes


def test_folded_all_and_peak_exact(reports, native_capture):
    every = folded(reports, native_capture)
    scratch = lines_ending(every, "rep_scratch")
    assert [v for _s, v in scratch] == [sum(SCRATCH_BLOCKS)]
    assert [v for _s, v in lines_ending(every, "rep_spike")] == [SPIKE]
    assert [v for _s, v in lines_ending(every, "rep_inline_alloc")] == [sum(LEAK_BLOCKS)]
    reader = native_capture.reader
    assert sum(v for _s, v in every) == reader.total_allocated_bytes
    counts = parse_folded(reports.ok("export", "--format", "folded", "--count",
                                     str(native_capture.path),
                                     cwd=native_capture.path.parent).stdout.decode())
    assert sum(v for _s, v in counts) == reader.total_allocations
    assert [v for _s, v in lines_ending(counts, "rep_scratch")] == [len(SCRATCH_BLOCKS)]

    at_peak = folded(reports, native_capture, "--peak")
    assert [v for _s, v in lines_ending(at_peak, "rep_spike")] == [SPIKE]
    assert [v for _s, v in lines_ending(at_peak, "rep_inline_alloc")] == [sum(LEAK_BLOCKS)]
    assert not lines_ending(at_peak, "rep_scratch")
    assert sum(v for _s, v in at_peak) == reader.peak_bytes


def test_show_internal_keeps_interpreter_frames(reports, native_capture):
    hidden = folded(reports, native_capture, "--leaks")
    shown = folded(reports, native_capture, "--leaks", "--show-internal")
    assert not any("_PyEval_EvalFrameDefault" in f for s, _v in hidden for f in s)
    assert any("_PyEval_EvalFrameDefault" in f for s, _v in shown for f in s)
    assert sum(v for _s, v in shown) == sum(v for _s, v in hidden)
    inner = lines_ending(shown, "rep_inline_alloc")
    assert [v for _s, v in inner] == [sum(LEAK_BLOCKS)] and inner[0][0][-5:] == leak_tail()


def test_flamegraph_native_frames_in_native_colour(reports, native_capture, tmp_path):
    out = tmp_path / "flame.html"
    reports.ok("flamegraph", "--leaks", str(native_capture.path), "-o", str(out),
               cwd=tmp_path)
    page = out.read_text()
    data = flamegraph_data(page)
    assert data["colours"]["native"] == KIND_COLOURS["native"]
    assert len(set(data["colours"].values())) == len(FrameKind)  # a colour per kind
    kinds: dict[str, set[str]] = {}
    todo = [data["tree"]]
    while todo:
        node = todo.pop()
        kinds.setdefault(node["n"], set()).add(node["k"])
        todo.extend(node.get("ch", []))
    for name in ("leak", "rep_entry", "rep_outer", "rep_middle"):
        assert kinds[name] == {"native"}, name
    assert kinds["rep_inline_alloc"] == {"inline"}
    assert kinds["work"] == {"python"}
    assert data["tree"]["v"] == native_capture.reader.heap_bytes
    # legend, hover, zoom and search are in the page; nothing is fetched
    assert 'id="legend"' in page and 'id="search"' in page and "mousemove" in page
    assert "click" in page
    for remote in ('src="http', "href=\"http", "fetch(", "XMLHttpRequest", "@import"):
        assert remote not in page


def test_pprof_decodes_to_the_same_totals(reports, native_capture, tmp_path):
    reader = native_capture.reader
    for selection, options in SELECTIONS.items():
        out = tmp_path / f"{selection}.pb.gz"
        reports.ok("export", "--format", "pprof", *options, str(native_capture.path),
                   "-o", str(out), cwd=tmp_path)
        prof = decode_pprof(out.read_bytes())
        prefix = {"all": "alloc", "leaks": "inuse", "peak": "peak"}[selection]
        assert prof["types"] == [(f"{prefix}_objects", "count"), (f"{prefix}_space", "bytes")]
        assert prof["default_type"] == f"{prefix}_space"
        nbytes, count = reader_totals(reader, selection)
        assert sum(v[1] for _f, v in prof["samples"]) == nbytes
        assert sum(v[0] for _f, v in prof["samples"]) == count
        if selection == "leaks":
            leaf_first = [s for s in prof["samples"] if s[0][0][0] == "rep_inline_alloc"]
            assert len(leaf_first) == 1
            frames, values = leaf_first[0]
            assert values == [len(LEAK_BLOCKS), sum(LEAK_BLOCKS)]
            c = c_markers()
            assert frames[:4] == [("rep_inline_alloc", str(SOURCE), c["inline_malloc"]),
                                  ("rep_middle", str(SOURCE), c["inline_call"]),
                                  ("rep_outer", str(SOURCE), c["middle_call"]),
                                  ("rep_entry", str(SOURCE), c["outer_call"])]
            assert str(native_capture.ext) in prof["mappings"]


@pytest.mark.skipif(shutil.which("go") is None and not os.environ.get("CI"),
                    reason="go is not installed (install.sh installs it; CI never skips)")
def test_pprof_opens_with_go_tool_pprof(reports, native_capture, tmp_path):
    out = tmp_path / "leaks.pb.gz"
    reports.ok("export", "--format", "pprof", "--leaks", str(native_capture.path), "-o",
               str(out), cwd=tmp_path)
    proc = subprocess.run(["go", "tool", "pprof", "-raw", str(out)], capture_output=True,
                          text=True, timeout=120, env={**reports.env, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "rep_middle" in proc.stdout and "rep_inline_alloc" in proc.stdout


def test_speedscope_schema_and_totals(reports, native_capture, tmp_path):
    out = tmp_path / "prof.speedscope.json"
    reports.ok("export", "--format", "speedscope", "--peak", str(native_capture.path), "-o",
               str(out), cwd=tmp_path)
    doc = json.loads(out.read_text())
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = doc["shared"]["frames"]
    assert all(isinstance(f["name"], str) for f in frames)
    by_bytes, by_count = doc["profiles"]
    reader = native_capture.reader
    assert by_bytes["type"] == "sampled" and by_bytes["unit"] == "bytes"
    assert sum(by_bytes["weights"]) == by_bytes["endValue"] == reader.peak_bytes
    assert sum(by_count["weights"]) == reader.peak_allocations
    assert len(by_bytes["samples"]) == len(by_bytes["weights"])
    spikes = [(s, w) for s, w in zip(by_bytes["samples"], by_bytes["weights"], strict=True)
              if frames[s[-1]]["name"] == "rep_spike"]
    assert [w for _s, w in spikes] == [SPIKE]
    names = [frames[i]["name"] for i in spikes[0][0]]
    assert names[0] == "<module>" and names.index("peak") < names.index("spike")
    assert all(0 <= i < len(frames) for s in by_bytes["samples"] for i in s)
    inline = [f for f in frames if f["name"].startswith("rep_inline_alloc")]
    assert inline == [] or all(f["name"].endswith("[inlined]") for f in inline)


def test_pprof_is_gzip(reports, py_capture, tmp_path):
    out = tmp_path / "p.pb.gz"
    reports.ok("export", "--format", "pprof", str(py_capture.path), "-o", str(out),
               cwd=tmp_path)
    assert gzip.decompress(out.read_bytes())
    prof = decode_pprof(out.read_bytes())
    assert sum(v[1] for _f, v in prof["samples"]) == py_capture.reader.total_allocated_bytes


@pytest.mark.skipif(shutil.which("chromium") is None and not os.environ.get("CI"),
                    reason="chromium is not installed (install.sh installs it; CI never skips)")
def test_flamegraph_page_runs_in_a_browser(reports, native_capture, tmp_path):
    """The page's script lays the graph out and searches (headless Chromium's DOM)."""
    out = tmp_path / "flame.html"
    reports.ok("flamegraph", str(native_capture.path), "-o", str(out), cwd=tmp_path)
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         f"{out.as_uri()}#search=rep_middle"],
        capture_output=True, text=True, timeout=120, env={**reports.env, "HOME": str(tmp_path)})
    dom = proc.stdout
    assert dom.count('class="fr ') > 10  # frames drawn
    hits = re.findall(r'class="fr hit" data-kind="(\w+)"[^>]*>([^<]*)<', dom)
    assert hits and all(kind == "native" and "rep_middle" in text for kind, text in hits)
    status = re.search(r'<span id="status">([^<]*)<', dom).group(1)
    assert status.startswith("matched ")
