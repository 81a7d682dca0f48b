"""A sampled stream (HEADER `sample_bytes`): every ALLOC stands for size/p bytes and 1/p
allocations, p = 1 - exp(-size/mean), with the count's fraction carried on; a FREE takes
back exactly what its ALLOC added; mmap is never sampled and counts as itself."""

from __future__ import annotations

import math

import pytest

from memtrace_core.reader import CaptureError, StreamReader
from tests.streamgen import MALLOC, MMAP, MUNMAP, StreamWriter

MEAN = 512 << 10


def weight(size: int) -> float:
    return 1.0 / -math.expm1(-size / MEAN)


def test_weights_counts_and_frees():
    w = StreamWriter(sample_bytes=MEAN)
    w.code(1, "f", "f.py", 1)
    w.pynode(1, 0, 1, 3)
    sizes = [4096, 4096, 100, 2 << 20, 600 << 10]
    for i, size in enumerate(sizes):
        w.alloc(1, MALLOC, 0x10000 + i * 0x1000000, size, 1)
    w.free(1, 10, 0x10000)  # the first 4 KiB block
    w.alloc(1, MMAP, 0x7F0000000000, 5 * 4096, 1)
    w.free(1, MUNMAP, 0x7F0000000000 + 4096, 4096)  # a partial munmap stays exact
    r = StreamReader()
    r.feed(w.data)
    assert r.sample_bytes == MEAN
    want_bytes = sum(round(s * weight(s)) for s in sizes) + 5 * 4096
    assert r.total_allocated_bytes == want_bytes
    # counts: the fractions carry from one allocation to the next
    carry, counts = 0.0, []
    for s in sizes:
        carry += weight(s)
        counts.append(math.floor(carry))
        carry -= counts[-1]
    assert r.total_allocations == sum(counts) + 1
    assert abs(sum(counts) - sum(weight(s) for s in sizes)) < 1
    # the free took back exactly the first block's estimate
    assert r.heap_bytes == want_bytes - round(4096 * weight(4096)) - 4096
    assert r.heap_allocations == sum(counts) - counts[0] + 1
    live = {a: s for a, s, _sid, _k in r.live_allocations()}
    assert live[0x10000 + 0x1000000] == round(4096 * weight(4096))
    assert live[0x7F0000000000] == 4 * 4096
    assert r.heap_bytes == sum(live.values())
    # the size histogram counts real sizes, weighted
    hist = dict(r.size_histogram)
    assert hist[4096] == counts[0] + counts[1]


def test_exact_stream_unchanged():
    w = StreamWriter()
    w.alloc(1, MALLOC, 0x1000, 4096)
    r = StreamReader()
    r.feed(w.data)
    assert r.sample_bytes == 0
    assert (r.total_allocated_bytes, r.total_allocations) == (4096, 1)


@pytest.mark.parametrize("value", [-1, "512KiB", 1.5])
def test_bad_sample_bytes_is_corrupt(value):
    w = StreamWriter(sample_bytes=value)
    with pytest.raises(CaptureError, match="sample_bytes"):
        StreamReader().feed(w.data)
