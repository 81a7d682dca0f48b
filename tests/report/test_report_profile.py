"""One pipeline: a report's tree (names resolved at once) and the UI's tree (names from the
worker process, renamed in place) agree exactly, and a second report reads the names from
the persistent symbol cache."""

from __future__ import annotations

import pytest

from memtrace_core.model.build import call_tree
from memtrace_core.reader import read_capture
from memtrace_core.report import export_folded
from memtrace_core.report.profile import Selection, load_profile


def _locations(tree, bi: int, ci: int) -> dict:
    out = {}
    for fid in tree.core.locations(1, bi):
        own, total, _user = tree.core.location(fid)
        if total[bi] or total[ci]:
            out[tree.frames[fid]] = (own[bi], own[ci], total[bi], total[ci])
    return out


@pytest.mark.parametrize("selection", list(Selection))
def test_report_equals_the_live_tree_once_named(native_capture, tmp_path, selection):
    profile = load_profile(native_capture.path, selection, cache_dir=tmp_path / "a")
    reader = native_capture.reader
    tree = call_tree(reader, names="async", cache_dir=tmp_path / "b")  # cold: all pending
    tree.set_metric(selection.metric)
    tree.rebuild()
    assert tree.pending_names() > 0
    unnamed = [f for f in tree.frames if f.kind.value == "unresolved"]
    assert unnamed and all("+0x" in f.function for f in unnamed)
    tree.namer.wait(timeout=120)
    tree.update()
    tree.close()
    assert tree.pending_names() == 0
    bi, ci = selection.metric.bytes_index, selection.metric.count_index
    ours = {loc.frame: (loc.own_bytes, loc.own_count, loc.total_bytes, loc.total_count)
            for loc in profile.locations()}
    assert ours == _locations(tree, bi, ci)
    assert (profile.total_bytes, profile.total_count) == (tree.root.total[bi],
                                                          tree.root.total[ci])


def test_second_report_names_from_the_symbol_cache(reports, report_ext, native_capture,
                                                   tmp_path):
    # a capture without stored names: only such a capture needs the cache
    path = reports.with_path(report_ext.parent).trace(tmp_path, "--native", "--no-names")
    cache = tmp_path / "cache"
    first = load_profile(path, Selection.ALL, cache_dir=cache)
    assert list((cache / "symbols").glob("*.msgpack"))
    again = load_profile(path, Selection.ALL, cache_dir=cache)
    assert export_folded.render(first) == export_folded.render(again)
    # the cached names are the ones a cold symbolizer finds, and the ones stored in a
    # capture that carries its names
    cold = load_profile(path, Selection.ALL, cache_dir=tmp_path / "cold")
    assert export_folded.render(cold) == export_folded.render(first)
    carried = load_profile(native_capture.path, Selection.ALL, cache_dir=tmp_path / "none")
    assert (export_folded.render(carried).replace(str(native_capture.path.parent), "DIR")
            == export_folded.render(first).replace(str(tmp_path), "DIR"))
    leaks = load_profile(path, Selection.LEAKS, cache_dir=cache)
    assert leaks.total_bytes == read_capture(path).heap_bytes
