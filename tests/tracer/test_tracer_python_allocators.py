"""`--trace-python-allocators` records the PyMem/PyObject domains once, not twice.

A bytes object of 1,000,003 bytes is one PyObject_Malloc of sys.getsizeof() bytes; pymalloc
hands requests above 512 bytes to malloc, and that inner malloc must not be counted again.
A 50-item list's item array is one PyMem_Malloc of 400 bytes, served by pymalloc's arenas:
invisible without the flag.
"""

from __future__ import annotations

import pytest
import tracer_support as ts

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
