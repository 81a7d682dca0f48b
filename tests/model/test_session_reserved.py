"""The header's figures through the session: address space reserved (MMAP_RESERVE) is said
apart from the heap, as of the tree's last commit."""

from __future__ import annotations

from memtrace_core.model import CallTree
from memtrace_core.model.session import Session
from memtrace_core.reader import StreamReader
from tests.streamgen import FREE_FN, MALLOC, MMAP_RESERVE, MUNMAP, StreamWriter

GiB = 1 << 30
BASE = 0x7F00_0000_0000


def test_summary_says_the_reserved_address_space_apart_from_the_heap():
    w = StreamWriter()
    py = w.py_stack([("pool", "arrow.py", 7)])
    w.alloc(1, MMAP_RESERVE, BASE, GiB, py)
    w.alloc(1, MALLOC, 0x1000, 4096, py)
    w.tick(1000)
    r = StreamReader()
    r.feed(w.data)
    session = Session(r, CallTree(r))
    assert session.summary().reserved_bytes == 0  # the tree holds nothing yet
    session.tree.update()
    summary = session.summary()
    assert (summary.heap_bytes, summary.peak_bytes, summary.reserved_bytes) == (4096, 4096, GiB)
    assert session.tree.root.total[2] == 4096  # the tree's root: the heap alone
    more = StreamWriter(header=False)
    more.chunks = []
    more._last_addr = w._last_addr
    more.free(1, MUNMAP, BASE, GiB // 2)
    more.free(1, FREE_FN, 0x1000)
    more.tick(2000)
    r.feed(more.data)
    session.tree.update()
    summary = session.summary()
    assert (summary.heap_bytes, summary.reserved_bytes) == (0, GiB // 2)
