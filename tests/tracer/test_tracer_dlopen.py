"""Libraries loaded after tracing began (ctypes.CDLL, and dlopen from C) are tracked."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tracer import tracer_support as ts

DLOPEN_SCRIPT = """\
import ctypes
import os

# nothing of ours is loaded before this line: tracing began before the dlopen below
lib = ctypes.CDLL(os.environ["MT_LIB"])
lib.mt_lib_alloc.restype = None
lib.mt_lib_alloc.argtypes = []
lib.mt_dlopen_call.restype = ctypes.c_int
lib.mt_dlopen_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
path = os.environ["MT_DL2"].encode()
symbol = b"mt2_alloc"


def use_library():
    lib.mt_lib_alloc()  # @mtlib
    status = lib.mt_dlopen_call(path, symbol)  # @dl2
    assert status == 0, status


use_library()
print("dlopen done")
"""


@pytest.fixture(scope="module", params=["plain", "native"])
def dlopen_run(request, tmp_path_factory, mt):
    options = ("--native",) if request.param == "native" else ()
    directory = tmp_path_factory.mktemp(f"dlopen_{request.param}")
    return mt.trace(directory, DLOPEN_SCRIPT, options=options).check()


def _sizes(run, marker: str) -> list[int]:
    return sorted(s for _a, s, _k in ts.live_at(run.reader, "use_library", run.lines[marker]))


def test_ctypes_loaded_library_exact(dlopen_run):
    """Sizes are distinctive, so ctypes' own allocations on the line (if any) are told apart
    by size: the library's blocks must all be there, exactly."""
    assert dlopen_run.proc.stdout == b"dlopen done\n"
    got = ts.totals_at(dlopen_run.reader, "use_library", dlopen_run.lines["mtlib"])
    extra = got.as_expect()
    assert extra.count >= ts.MTLIB_ALLOC.count
    assert [s for s in _sizes(dlopen_run, "mtlib") if s > 6_000_000] == [
        ts.MTLIB_SIZES[1],
        ts.MTLIB_SIZES[3],
    ]
    # whatever ctypes adds on the line is small (< 64 KiB): the library's bytes are exact
    assert 0 <= got.bytes - ts.MTLIB_ALLOC.bytes < 65536, got
    assert 0 <= got.leaked_bytes - ts.MTLIB_ALLOC.leaked_bytes < 65536, got


def test_ctypes_adds_nothing_on_the_call_line(dlopen_run):
    """Measured: a ctypes call with declared argtypes/restype mallocs nothing itself."""
    got = ts.totals_at(dlopen_run.reader, "use_library", dlopen_run.lines["mtlib"])
    assert got.as_expect() == ts.MTLIB_ALLOC


def test_library_dlopened_from_c_is_tracked(dlopen_run):
    live = _sizes(dlopen_run, "dl2")
    assert [s for s in live if s > 7_000_000] == [7000003, 7001009]


def test_maps_snapshot_lists_the_loaded_libraries(dlopen_run, cbuild):
    paths = {Path(entry[0]).resolve() for entry in dlopen_run.reader.maps}
    assert cbuild.mtlib.resolve() in paths
    assert cbuild.mtdl2.resolve() in paths
    first = {Path(entry[0]).resolve() for entry in dlopen_run.reader.maps_history[0]}
    assert cbuild.mtlib.resolve() not in first
    for entry in dlopen_run.reader.maps:
        if Path(entry[0]).resolve() == cbuild.mtlib.resolve():
            build_id = entry[2]
            assert build_id is None or all(c in "0123456789abcdef" for c in build_id)
            assert entry[3], "no PT_LOAD segment recorded"


@pytest.fixture(scope="module")
def dlopen_run_native(tmp_path_factory, mt):
    directory = tmp_path_factory.mktemp("dlopen_native_stacks")
    return mt.trace(directory, DLOPEN_SCRIPT, options=("--native",)).check()


def test_native_frames_inside_dlopened_libraries(dlopen_run_native, cbuild):
    dlopen_run = dlopen_run_native
    reader = dlopen_run.reader
    seen = set()
    for sid in ts.stacks_at(reader, "use_library", dlopen_run.lines["mtlib"]):
        names = ts.functions_on_stack(reader, reader.stack_key(sid)[1], cbuild.mtlib)
        if names:
            assert names == ["mt_lib_inner", "mt_lib_outer", "mt_lib_alloc"], names
            seen.add(tuple(names))
    assert seen
    seen.clear()
    for sid in ts.stacks_at(reader, "use_library", dlopen_run.lines["dl2"]):
        nativenode = reader.stack_key(sid)[1]
        inner = ts.functions_on_stack(reader, nativenode, cbuild.mtdl2)
        outer = ts.functions_on_stack(reader, nativenode, cbuild.mtlib)
        if inner:
            assert inner == ["mt2_alloc"] and outer == ["mt_dlopen_call"], (inner, outer)
            seen.add(1)
    assert seen


DLCLOSE_SCRIPT = """\
import _ctypes
import ctypes
import os

lib = ctypes.CDLL(os.environ["MT_DL2"])
lib.mt2_alloc.restype = None
lib.mt2_alloc()  # @alloc
handle = lib._handle
del lib
_ctypes.dlclose(handle)
again = ctypes.CDLL(os.environ["MT_DL2"])
again.mt2_alloc.restype = None
again.mt2_alloc()  # @again
print("dlclose done")
"""


def test_dlclose_then_dlopen_again(tmp_path, mt, cbuild):
    run = mt.trace(tmp_path, DLCLOSE_SCRIPT).check()
    assert run.proc.stdout == b"dlclose done\n"
    reader = run.reader
    real = cbuild.mtdl2.resolve()
    present = [
        any(Path(e[0]).resolve() == real for e in snapshot) for snapshot in reader.maps_history
    ]
    # loaded, then gone after dlclose, then loaded again
    assert [k for i, k in enumerate(present) if i == 0 or present[i - 1] != k] == [
        False,
        True,
        False,
        True,
    ], present
    for marker in ("alloc", "again"):
        live = ts.live_at(reader, "<module>", run.lines[marker])
        assert sorted(s for _a, s, _k in live if s > 7_000_000) == [7000003, 7001009]
