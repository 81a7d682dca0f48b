"""A sampled stream (HEADER `sample_bytes`): every ALLOC stands for size/p bytes and 1/p
allocations, p = 1 - exp(-size/mean), with the count's fraction carried on; a FREE takes
back exactly what its ALLOC added; mmap is never sampled and counts as itself."""

from __future__ import annotations

import math

import pytest

from memtrace_core.reader import CaptureError, StreamReader
from tests.streamgen import (
    ALLOC,
    ALLOC_AGAIN,
    ALLOC_SAME,
    FREE,
    FREE_FN,
    FREE_SAME,
    MALLOC,
    MMAP,
    MUNMAP,
    StreamWriter,
)

MEAN = 512 << 10
MAP = 0x7F0000000000


def weight(size: int) -> float:
    return 1.0 / -math.expm1(-size / MEAN)


@pytest.mark.parametrize("version", [1, 4])
def test_weights_counts_and_frees(version):
    """Before format 5, a sampled capture's records carry addresses, as exact ones do."""
    w = StreamWriter(sample_bytes=MEAN, format=version)
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


def _ordinal_stream() -> StreamWriter:
    """Format 5: a sampled capture's heap ALLOCs carry ordinals (0, 1, 2, ... in stream
    order) instead of addresses, and their FREEs name them by how many came after."""
    w = StreamWriter(sample_bytes=MEAN, format=5)
    w.code(1, "f", "f.py", 1)
    w.pynode(1, 0, 1, 3)
    w.record(ALLOC, 1, MALLOC, 0, 4096, 1, 0)  # ordinal 0
    w.record(ALLOC_SAME, 0, 8192)  # 1
    w.alloc(1, MMAP, MAP, 5 * 4096, 1)  # mmap keeps its address (a delta)
    w.record(ALLOC_SAME, 1 << 20, 4096)  # an mmap's ALLOC_SAME: a delta too (MAP + 1 MiB)
    w.record(ALLOC, 1, MALLOC, 0, 100 << 10, 1, 0)  # 2
    w.record(FREE, 1, FREE_FN, 2, 0)  # 2 ALLOCs came after it: ordinal 0
    w.record(FREE, 1, MUNMAP, 4096 - (1 << 20), 4096)  # MAP + 4 KiB: heap records move no
    # address
    w.record(FREE, 1, FREE_FN, 3, 0)  # ordinal -1: never sent, ignored
    w.record(FREE_SAME, 0)  # ordinal 2
    w.record(ALLOC, 1, MALLOC, 2, 64, 1, 0)  # 3, at the address of 1 (its free unseen)
    return w


def test_format_5_sampled_heap_records_carry_ordinals():
    r = StreamReader()
    r.feed(_ordinal_stream().data)
    assert (r.total_frees, r.ignored_frees, r.implicit_frees) == (3, 1, 1)
    small = round(64 * weight(64))
    live = sorted((a, s) for a, s, _sid, _k in r.live_allocations())
    assert live == [(3, small), (MAP, 4 * 4096), (MAP + (1 << 20), 4096)]  # heap: ordinals
    assert r.heap_bytes == small + 5 * 4096
    assert r.total_allocated_bytes == sum(
        round(s * weight(s)) for s in (4096, 8192, 100 << 10, 64)) + 6 * 4096


def test_format_5_exact_stream_keeps_addresses():
    w = StreamWriter(format=5)
    w.alloc(1, MALLOC, 0x1000, 4096)
    w.alloc(1, MALLOC, 0x3000, 64)
    w.free(1, FREE_FN, 0x1000)
    r = StreamReader()
    r.feed(w.data)
    assert [(a, s) for a, s, _sid, _k in r.live_allocations()] == [(0x3000, 64)]


def test_format_5_alloc_replacing_a_block_never_sent_is_corrupt():
    w = StreamWriter(sample_bytes=MEAN, format=5)
    w.record(ALLOC, 1, MALLOC, 0, 4096, 0, 0)
    w.record(ALLOC, 1, MALLOC, 2, 4096, 0, 0)  # ordinal 1 cannot replace ordinal -1
    with pytest.raises(CaptureError, match="never sent"):
        StreamReader().feed(w.data)


def _again_stream(version: int = 7, sample: int = MEAN) -> StreamWriter:
    """Format 7: ALLOC_AGAIN names an earlier full ALLOC record (0 = the first) whose
    thread, allocator and stacks it repeats; ALLOC_SAME after it repeats it again."""
    w = StreamWriter(sample_bytes=sample, format=version)
    w.code(1, "f", "f.py", 1)
    w.pynode(1, 0, 1, 3)
    w.pynode(2, 0, 1, 4)
    w.record(ALLOC, 1, MALLOC, 0, 4096, 1, 0)  # full ALLOC record 0, ordinal 0
    w.alloc(1, MMAP, MAP, 8192, 2)  # full ALLOC record 1 (mmap: an address delta)
    w.record(ALLOC, 2, MALLOC, 0, 100, 2, 0)  # record 2, ordinal 1
    w.record(ALLOC_AGAIN, 0, 0, 200)  # thread 1, line 3: ordinal 2
    w.record(ALLOC_SAME, 0, 300)  # the same again: ordinal 3
    w.record(ALLOC_AGAIN, 1, 1 << 20, 4096)  # an mmap again, MAP + 1 MiB
    w.record(ALLOC_AGAIN, 2, 2, 400)  # thread 2, line 4, ordinal 4: replaces ordinal 2
    return w


def test_format_7_alloc_again_repeats_an_earlier_alloc_records_context():
    r = StreamReader()
    r.feed(_again_stream().data)
    assert not r.error and r.implicit_frees == 1
    live = {a: s for a, s, _sid, _k in r.live_allocations()}
    assert live == {0: round(4096 * weight(4096)), MAP: 8192, 1: round(100 * weight(100)),
                    3: round(300 * weight(300)), MAP + (1 << 20): 4096,
                    4: round(400 * weight(400))}
    key = {a: r.stack_key(sid) for a, _s, sid, _k in r.live_allocations()}
    assert key[3] == key[0] and key[MAP + (1 << 20)] == key[MAP]
    assert key[4] == key[1] != key[0]


@pytest.mark.parametrize(("stream", "message"), [
    (lambda: _again_stream(version=6), "unknown record type"),
    (lambda: _again_stream(sample=0), "not sampled"),
])
def test_alloc_again_outside_a_format_7_sampled_capture_is_corrupt(stream, message):
    with pytest.raises(CaptureError, match=message):
        StreamReader().feed(stream().data)


def test_alloc_again_naming_a_record_not_sent_is_corrupt():
    w = StreamWriter(sample_bytes=MEAN, format=7)
    w.record(ALLOC, 1, MALLOC, 0, 4096, 0, 0)
    w.record(ALLOC_AGAIN, 1, 0, 64)  # only record 0 was sent
    with pytest.raises(CaptureError, match="not sent yet"):
        StreamReader().feed(w.data)
