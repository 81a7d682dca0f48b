"""PYNODE_NEXT and NATIVENODE_NEXT (format 6): a trie node numbered after the previous one of
its trie, its parent given as how far up it is; the full forms stay valid beside them."""

from __future__ import annotations

import pytest

from memtrace_core.reader import CaptureError, StreamReader
from tests.streamgen import MALLOC, NATIVENODE_NEXT, PYNODE_NEXT, StreamWriter


def test_next_forms_number_after_the_previous_node():
    w = StreamWriter(format=6, native=True)
    w.code(1, "outer", "a.py", 1)
    w.code(2, "inner", "a.py", 5)
    w.record(PYNODE_NEXT, 1, 1, 3, True)  # id 1, parent 0 (the root)
    w.record(PYNODE_NEXT, 1, 2, 7, False)  # id 2, parent 1
    w.pynode(9, 1, 2, 8)  # a full PYNODE after a gap in the ids ...
    w.record(PYNODE_NEXT, 8, 2, 9, False)  # ... and the next form numbers after it: 10, parent 2
    w.record(NATIVENODE_NEXT, 1, 0x1000)  # id 1, root
    w.record(NATIVENODE_NEXT, 1, 0x2000)  # id 2, parent 1
    w.record(NATIVENODE_NEXT, 2, 0x3000)  # id 3, parent 1
    w.alloc(1, MALLOC, 0x10, 10, 2, 2)
    w.alloc(1, MALLOC, 0x20, 20, 10, 3)
    w.alloc(1, MALLOC, 0x30, 30, 9, 3)
    r = StreamReader()
    r.feed(w.data)
    assert r.py_stack(2) == [(2, 7, False), (1, 3, True)]
    assert r.py_stack(9) == [(2, 8, False), (1, 3, True)]
    assert r.py_stack(10) == [(2, 9, False), (2, 7, False), (1, 3, True)]
    assert (r.native_stack(2), r.native_stack(3)) == ([0x2000, 0x1000], [0x3000, 0x1000])
    assert r.total_allocated_bytes == 60


@pytest.mark.parametrize(("record", "message"), [
    ((PYNODE_NEXT, 0, 1, 3, False), "PYNODE_NEXT parent out of range"),
    ((PYNODE_NEXT, 2, 1, 3, False), "PYNODE_NEXT parent out of range"),  # id 1: up 1 at most
    ((PYNODE_NEXT, 1, 1, 3), "PYNODE_NEXT record has the wrong length"),
    ((NATIVENODE_NEXT, 0, 0x1000), "NATIVENODE_NEXT parent out of range"),
    ((NATIVENODE_NEXT, 1), "NATIVENODE_NEXT record has the wrong length"),
])
def test_bad_next_forms_are_corrupt(record, message):
    w = StreamWriter(format=6)
    w.code(1, "f", "a.py", 1)
    w.record(*record)
    with pytest.raises(CaptureError, match=message):
        StreamReader().feed(w.data)


@pytest.mark.parametrize("record", [(PYNODE_NEXT, 1, 1, 3, False), (NATIVENODE_NEXT, 1, 5)])
def test_next_forms_are_unknown_before_format_6(record):
    w = StreamWriter(format=5)
    w.code(1, "f", "a.py", 1)
    w.record(*record)
    with pytest.raises(CaptureError, match="unknown record type"):
        StreamReader().feed(w.data)
