"""`--trace-python-allocators` records the PyMem/PyObject domains once, not twice.

A bytes object of 1,000,003 bytes is one PyObject_Malloc of sys.getsizeof() bytes; pymalloc
hands requests above 512 bytes to malloc, and that inner malloc must not be counted again.
A 50-item list's item array is one PyMem_Malloc of 400 bytes, served by pymalloc's arenas:
invisible without the flag.
"""

from __future__ import annotations

import pytest

from tests.tracer import tracer_support as ts

SCRIPT = """\
import sys


def make():
    data = b"\\x01" * 1_000_003  # @big
    items = [None] * 50  # @small
    return data, items


keep = make()
print(sys.getsizeof(keep[0]))
"""
PYMALLOC_MALLOC = 13


@pytest.mark.parametrize("python_allocators", [False, True], ids=["plain", "pymalloc"])
def test_python_allocator_domains(tmp_path, mt, python_allocators):
    options = ("--trace-python-allocators",) if python_allocators else ()
    run = mt.trace(tmp_path, SCRIPT, options=options).check()
    size = int(run.proc.stdout)
    assert size == 1_000_003 + 33  # PyBytesObject header + data + NUL
    reader = run.reader
    assert reader.header["python_allocators"] is python_allocators
    kind = PYMALLOC_MALLOC if python_allocators else ts.MALLOC
    assert ts.totals_at(reader, "make", run.lines["big"]).as_expect() == ts.Expect(1, size, 1, size)
    assert ts.live_at(reader, "make", run.lines["big"])[0][1:] == (size, kind)
    small = ts.live_at(reader, "make", run.lines["small"])
    if python_allocators:
        assert [(s, k) for _a, s, k in small] == [(400, PYMALLOC_MALLOC)]
    else:  # (a new pymalloc arena, an mmap, could appear here: only the 400 bytes can't)
        assert [s for _a, s, _k in small if s == 400] == []


RAW_SCRIPT = """\
import ctypes

api = ctypes.pythonapi
for name in ("PyMem_RawMalloc", "PyMem_RawCalloc", "PyMem_RawRealloc"):
    getattr(api, name).restype = ctypes.c_void_p
api.PyMem_RawMalloc.argtypes = [ctypes.c_size_t]
api.PyMem_RawCalloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
api.PyMem_RawRealloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
api.PyMem_RawFree.argtypes = [ctypes.c_void_p]


def raw():
    kept = api.PyMem_RawMalloc(1_100_003)  # @malloc
    zeroed = api.PyMem_RawCalloc(7, 100_003)  # @calloc
    grown = api.PyMem_RawRealloc(api.PyMem_RawMalloc(50_001), 1_300_007)  # @realloc
    api.PyMem_RawFree(api.PyMem_RawMalloc(1_400_009))  # @free
    return kept, zeroed, grown


blocks = raw()
"""
RAW_MALLOC, RAW_CALLOC, RAW_REALLOC, RAW_FREE = 17, 18, 19, 20


@pytest.mark.parametrize("python_allocators", [False, True], ids=["plain", "pymalloc"])
def test_raw_domain_has_its_own_allocator_kind(tmp_path, mt, python_allocators):
    """PyMem_Raw* is recorded as such (not as the malloc it calls, nor twice) under
    --trace-python-allocators, and as the malloc/calloc/realloc it is without the flag."""
    options = ("--trace-python-allocators",) if python_allocators else ()
    run = mt.trace(tmp_path, RAW_SCRIPT, options=options).check()
    reader = run.reader

    def live(marker):  # (the line's small Python objects, e.g. the int, are not ours)
        return [(s, k) for _a, s, k in ts.live_at(reader, "raw", run.lines[marker])
                if s > 4096]

    kinds = ((RAW_MALLOC, RAW_CALLOC, RAW_REALLOC) if python_allocators
             else (ts.MALLOC, ts.CALLOC, ts.REALLOC))
    assert live("malloc") == [(1_100_003, kinds[0])]
    assert live("calloc") == [(700_021, kinds[1])]
    assert live("realloc") == [(1_300_007, kinds[2])]
    assert live("free") == []
    freed = ts.totals_at(reader, "raw", run.lines["free"])
    realloc = ts.totals_at(reader, "raw", run.lines["realloc"])
    if python_allocators:  # every Python object on the lines is counted too
        assert freed.bytes - 1_400_009 < 4096 and freed.count >= 1 and freed.leaked_bytes < 4096
        assert realloc.bytes - (50_001 + 1_300_007) < 4096
        stats = reader.allocator_stats
        assert stats[RAW_MALLOC][0] >= 3 and stats[RAW_CALLOC][0] >= 1
    else:
        assert (freed.count, freed.bytes, freed.leaked_count) == (1, 1_400_009, 0)
        assert (realloc.count, realloc.bytes) == (2, 50_001 + 1_300_007)
