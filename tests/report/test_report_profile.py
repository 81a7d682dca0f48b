"""The reports' aggregation against the model's call tree (the TUI's numbers), and the
per-capture path cache: same answers with it, without it, and with a corrupt one."""

from __future__ import annotations

import pytest

from memtrace_core.model.build import stack_frames
from memtrace_core.model.calltree import CallTree
from memtrace_core.report import export_folded
from memtrace_core.report.offline import OfflineNative
from memtrace_core.report.pathcache import cache_file
from memtrace_core.report.profile import Selection, load_profile


@pytest.mark.parametrize("selection", list(Selection))
def test_locations_match_the_model_call_tree(native_capture, tmp_path, selection):
    profile = load_profile(native_capture.path, selection, cache_dir=tmp_path)
    reader = native_capture.reader
    frames = stack_frames(reader, symbolize=False)
    frames.native = OfflineNative(reader, cache_dir=tmp_path)  # names now, same merge
    tree = CallTree(reader, frames)
    tree.set_metric(selection.metric)
    tree.rebuild()
    bi, ci = selection.metric.bytes_index, selection.metric.count_index
    model = {loc.frame: (loc.own[bi], loc.own[ci], loc.total[bi], loc.total[ci])
             for loc in tree.locations.values() if loc.total[bi] or loc.total[ci]}
    ours = {loc.frame: (loc.own_bytes, loc.own_count, loc.total_bytes, loc.total_count)
            for loc in profile.locations()}
    assert ours == model
    assert (profile.total_bytes, profile.total_count) == (tree.root.total[bi],
                                                          tree.root.total[ci])


def test_path_cache_gives_the_same_report(native_capture, tmp_path):
    fresh = load_profile(native_capture.path, Selection.ALL, cache_dir=tmp_path,
                         use_cache=False)
    expected = export_folded.render(fresh)
    target = cache_file(native_capture.path, False, tmp_path)
    assert target is not None and not target.exists()
    first = load_profile(native_capture.path, Selection.ALL, cache_dir=tmp_path)
    assert target.exists()
    cached = load_profile(native_capture.path, Selection.ALL, cache_dir=tmp_path)
    assert export_folded.render(first) == export_folded.render(cached) == expected
    # a torn or foreign cache file is ignored and rewritten
    target.write_bytes(b"\x93garbage")
    again = load_profile(native_capture.path, Selection.LEAKS, cache_dir=tmp_path)
    assert again.total_bytes == native_capture.reader.heap_bytes
    assert export_folded.render(load_profile(native_capture.path, Selection.ALL,
                                             cache_dir=tmp_path)) == expected
    # --show-internal paths are cached apart
    assert cache_file(native_capture.path, True, tmp_path) != target
