"""Native stacks as deep as the program's (issue 19): a C recursion of depth 300 and 2,048
ending in malloc keeps every frame; one of depth 6,000, beyond the default limit of 4,096
frames, keeps its innermost 4,096 and says exactly how many were cut; a stack going
Python -> C -> Python ... through that limit still merges its Python frames in order."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

from memtrace_core.frames import CUT_MARKER_BASE
from memtrace_core.report import deepjson
from memtrace_core.tracer import _tracer
from tests.tracer import tracer_support as ts

# Python 3.10 names frames by co_name (no co_qualname before 3.11)
DESCEND = "level.<locals>.descend" if sys.version_info >= (3, 11) else "descend"

LIMIT = _tracer.DEFAULT_NATIVE_DEPTH
SIZES = {300: 7_300_003, 2048: 7_204_809, 6000: 7_600_001}
HYBRID_SIZE = 7_700_007
LEVELS, PER_LEVEL = 30, 150  # Python levels, C frames of mt_deep_call per level

SCRIPT = """\
import ctypes
import os

lib = ctypes.CDLL(os.environ["MT_DEEP"])
lib.mt_deep_alloc.argtypes = [ctypes.c_int, ctypes.c_size_t]
lib.mt_deep_alloc.restype = None
CALLBACK = ctypes.CFUNCTYPE(None)
lib.mt_deep_call.argtypes = [ctypes.c_int, CALLBACK]
lib.mt_deep_call.restype = None


def recurse_in_c(depth, size):
    lib.mt_deep_alloc(depth, size)  # @alloc


def level(n):
    if n == 0:
        lib.mt_deep_alloc(10, HYBRID_SIZE)  # @leaf
        return

    def descend():
        level(n - 1)  # @descend

    lib.mt_deep_call(PER_LEVEL, CALLBACK(descend))  # @call


for depth, size in SIZES:
    recurse_in_c(depth, size)  # @each
level(LEVELS)  # @top
print("deep done")
"""


def _script() -> str:
    return (SCRIPT.replace("SIZES:", f"{sorted(SIZES.items())}:")
            .replace("HYBRID_SIZE", str(HYBRID_SIZE))
            .replace("PER_LEVEL", str(PER_LEVEL)).replace("LEVELS", str(LEVELS)))


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory, mt):
    directory = tmp_path_factory.mktemp("deep")
    return mt.trace(directory, _script(), options=("--native",), timeout=240).check()


def _live_stack(run, size: int) -> list[int]:
    """The native stack (innermost first, reader order) of the live block of this size."""
    reader = run.reader
    found = [sid for _a, s, sid, _k in reader.live_allocations() if s == size]
    assert len(found) == 1, f"{len(found)} live blocks of {size} bytes"
    return reader.native_stack(reader.stack_key(found[0])[1])


def _names_of(run, cbuild, ip: int) -> list[str]:
    """The mtdeep function holding a return address ([] outside the library)."""
    where = ts.module_of(run.reader.maps, ip)
    if where is None or Path(where[0]).resolve() != cbuild.mtdeep.resolve():
        return []
    names = {name.split(".")[0] for name, (start, end) in _ranges(cbuild.mtdeep).items()
             if start <= where[1] - 1 < end}  # gcc's `f.localalias` is f
    return sorted(names)


@functools.cache
def _ranges(library: Path) -> dict[str, tuple[int, int]]:
    return ts.function_ranges(library)


@pytest.mark.parametrize("depth", [300, 2048])
def test_deep_recursion_keeps_every_frame(deep_run, cbuild, depth):
    assert deep_run.proc.stdout == b"deep done\n"
    ips = _live_stack(deep_run, SIZES[depth])
    assert all(ip < CUT_MARKER_BASE for ip in ips), "cut below the limit"
    names = [n for ip in ips for n in _names_of(deep_run, cbuild, ip)]
    assert names == ["mt_deep_leaf", *["mt_deep_recurse"] * depth, "mt_deep_entry",
                     "mt_deep_alloc"]


def test_deeper_than_the_limit_keeps_the_innermost_frames_and_counts_the_cut(deep_run, cbuild):
    ips = _live_stack(deep_run, SIZES[6000])
    assert len(ips) == LIMIT + 1
    assert ips[-1] >= CUT_MARKER_BASE and all(ip < CUT_MARKER_BASE for ip in ips[:-1])
    names = [n for ip in ips[:-1] for n in _names_of(deep_run, cbuild, ip)]
    assert names == ["mt_deep_leaf", *["mt_deep_recurse"] * (LIMIT - 1)]
    # The same call 2,048 deep had all its frames: 6,000 deep has 3,952 more.
    full = len(_live_stack(deep_run, SIZES[2048])) + (6000 - 2048)
    assert ips[-1] - CUT_MARKER_BASE == full - LIMIT


@pytest.fixture(scope="module")
def deep_tree(deep_run, mt) -> dict:
    """`memtrace tree --json` of the leaks, every branch, every level (thousands deep)."""
    proc = mt.cli("tree", "--json", "--leaks", "--threshold", "0", "--max-depth", "0",
                  str(deep_run.capture), cwd=deep_run.capture.parent, timeout=240)
    assert proc.returncode == 0, proc.stderr.decode()
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 50_000))
    try:
        return deepjson.loads(proc.stdout)
    finally:
        sys.setrecursionlimit(old)


def test_reports_name_the_innermost_frames_and_the_cut(deep_run, deep_tree):
    tree = deep_tree
    path = [f["function"] for f in ts.tree_path_to(tree, SIZES[2048])]
    assert path[:2] == ["<module>", "recurse_in_c"]
    assert path[-2050:] == ["mt_deep_entry", *["mt_deep_recurse"] * 2048, "mt_deep_leaf"]
    cut = ts.tree_path_to(tree, SIZES[6000])
    cut_ips = _live_stack(deep_run, SIZES[6000])
    count = cut_ips[-1] - CUT_MARKER_BASE
    assert [f["function"] for f in cut] == [
        "<module>", "recurse_in_c", f"… {count:,} frames cut",
        *["mt_deep_recurse"] * (LIMIT - 1), "mt_deep_leaf"]
    assert cut[2]["kind"] == "unresolved"


def test_hybrid_merge_through_a_cut_stack(deep_run, deep_tree):
    """Python -> C -> Python ... 30 levels, ~170 native frames each: the innermost levels
    keep their native frames between their Python frames, the cut sits between them and the
    outer levels, which keep their Python frames: every Python frame, in order."""
    ips = _live_stack(deep_run, HYBRID_SIZE)
    assert ips[-1] >= CUT_MARKER_BASE, "the hybrid stack should be deeper than the limit"
    lines = deep_run.lines
    path = ts.tree_path_to(deep_tree, HYBRID_SIZE)
    python = [(f["function"], f["line"]) for f in path if f["kind"] == "python"]
    expected = [("<module>", lines["top"])]
    for _ in range(LEVELS):
        expected += [("level", lines["call"]), (DESCEND, lines["descend"])]
    expected.append(("level", lines["leaf"]))
    assert python == expected
    names = [f["function"] for f in path]
    marks = [i for i, name in enumerate(names) if name.endswith(" frames cut")]
    assert len(marks) == 1
    before, after = names[:marks[0]], names[marks[0] + 1:]
    assert "mt_deep_call" not in before  # outer levels: Python frames only
    runs, current = [], 0
    for name in after + [""]:
        if name == "mt_deep_call":
            current += 1
        elif current:
            runs.append(current)
            current = 0
    # whole levels inside the kept frames, each between its own Python frames
    assert len(runs) >= 20 and all(n == PER_LEVEL for n in runs[1:]), runs
    assert after[-13:] == ["mt_deep_alloc", "mt_deep_entry", *["mt_deep_recurse"] * 10,
                           "mt_deep_leaf"]


SWEEP = range(230, 300)  # around the per-thread arrays' first size (256) and its spare room
SWEEP_BASE = 7_900_000

SWEEP_SCRIPT = """\
import ctypes
import os

lib = ctypes.CDLL(os.environ["MT_DEEP"])
lib.mt_deep_alloc.argtypes = [ctypes.c_int, ctypes.c_size_t]
lib.mt_deep_alloc.restype = None
for depth in DEPTHS:
    lib.mt_deep_alloc(depth, BASE + depth)
print("sweep done")
"""


def test_stacks_just_past_the_first_array_size_are_kept_whole(tmp_path, mt, cbuild):
    """A stack a little deeper than the per-thread arrays hold, with fewer tracer frames on
    top than the room kept for them, was copied past the end of a heap block (pandas' import
    under --native aborted in realloc). Every depth of the sweep keeps every frame."""
    script = (SWEEP_SCRIPT.replace("DEPTHS", repr(list(SWEEP)))
              .replace("BASE", str(SWEEP_BASE)))
    run = mt.trace(tmp_path, script, options=("--native",), timeout=240).check()
    assert run.proc.stdout == b"sweep done\n"
    for depth in SWEEP:
        names = [n for ip in _live_stack(run, SWEEP_BASE + depth)
                 for n in _names_of(run, cbuild, ip)]
        assert names == ["mt_deep_leaf", *["mt_deep_recurse"] * depth, "mt_deep_entry",
                         "mt_deep_alloc"], depth


PY_DEEP = """\
import sys

sys.setrecursionlimit(10_000)
kept = []


def recurse(n):
    if n == 0:
        kept.append(bytearray(5_555_555))  # @leaf
        return
    recurse(n - 1)  # @recurse


recurse(3000)  # @top
"""


@pytest.mark.parametrize("native", [False, True], ids=["plain", "native"])
def test_deep_python_recursion_keeps_every_frame(tmp_path, mt, native):
    options = ("--native",) if native else ()
    run = mt.trace(tmp_path, PY_DEEP, options=options).check()
    reader = run.reader
    found = [sid for _a, s, sid, _k in reader.live_allocations() if s == 5_555_556]
    assert len(found) == 1
    stack = [(reader.codes[code][0], line)
             for code, line, _entry in reader.py_stack(reader.stack_key(found[0])[0])]
    assert stack == [("recurse", run.lines["leaf"]), *[("recurse", run.lines["recurse"])] * 3000,
                     ("<module>", run.lines["top"])]
