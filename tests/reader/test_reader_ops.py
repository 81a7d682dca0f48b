"""Exact aggregates on synthetic streams, checked against a brute-force oracle."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memtrace_core.reader import StreamReader
from tests.reader.reader_helpers import read_all, snapshot
from tests.reader.reader_oracle import Oracle
from tests.streamgen import (
    CALLOC,
    FREE_FN,
    MALLOC,
    MMAP,
    MMAP_RESERVE,
    MUNMAP,
    PYMALLOC_FREE,
    PYMALLOC_MALLOC,
    REALLOC,
    StreamWriter,
)

PAGE = 4096
MMAP_BASE = 0x7F00_0000_0000


def build(ops: list[tuple], native: bool = False,
          threshold: int = 1) -> tuple[StreamWriter, Oracle]:
    """Replay operations into a stream and into the oracle."""
    w = StreamWriter(native=native)
    o = Oracle(threshold=threshold)
    w.thread(1, 1000, "MainThread")
    w.thread(2, 1001, "worker")
    pys = [0] + [
        w.py_stack([("main", "app.py", 5), (f"f{i}", f"mod{i % 2}.py", 10 + i)]) for i in range(4)
    ]
    nats = [0] + [w.native_stack([0x400000, 0x401000 + 16 * i]) for i in range(3)]
    t = 0
    for op in ops:
        kind = op[0]
        if kind == "alloc":
            _, thread, allocator, slot, size, si, ni = op
            addr = 0x10000 + 16 * slot
            args = (thread, allocator, addr, size, pys[si], nats[ni] if native else 0)
            w.alloc(*args)
            o.alloc(*args)
        elif kind == "free":
            _, thread, allocator, slot = op
            addr = 0x10000 + 16 * slot
            w.free(thread, allocator, addr)
            o.free(thread, allocator, addr, 0)
        elif kind == "realloc":
            _, thread, old, new, size, si = op
            a_old, a_new = 0x10000 + 16 * old, 0x10000 + 16 * new
            w.free(thread, REALLOC, a_old)
            o.free(thread, REALLOC, a_old, 0)
            w.alloc(thread, REALLOC, a_new, size, pys[si], 0)
            o.alloc(thread, REALLOC, a_new, size, pys[si], 0)
        elif kind == "mmap":
            _, thread, page, size, si = op
            addr = MMAP_BASE + page * PAGE
            w.alloc(thread, MMAP, addr, size, pys[si], 0)
            o.alloc(thread, MMAP, addr, size, pys[si], 0)
        elif kind == "reserve":
            _, thread, page, size, si = op
            addr = MMAP_BASE + page * PAGE
            w.alloc(thread, MMAP_RESERVE, addr, size, pys[si], 0)
            o.alloc(thread, MMAP_RESERVE, addr, size, pys[si], 0)
        elif kind == "munmap":
            _, thread, start, size = op
            addr = MMAP_BASE + start
            w.free(thread, MUNMAP, addr, size)
            o.free(thread, MUNMAP, addr, size)
        elif kind == "tick":
            t += op[1]
            w.tick(t, 1 << 20)
            o.tick(t)
    return w, o


def check(w: StreamWriter, o: Oracle) -> StreamReader:
    r = StreamReader()
    r.set_temporary_threshold(o.threshold)
    r.feed(w.data)
    r.finish()
    assert r.complete is False and r.truncated is False
    assert (r.total_allocated_bytes, r.total_allocations) == (o.total_bytes, o.total_allocs)
    assert (r.total_frees, r.ignored_frees) == (o.total_frees, o.ignored_frees)
    assert (r.heap_bytes, r.heap_allocations) == (o.heap_bytes, o.heap_allocs)
    assert (r.peak_bytes, r.peak_allocations, r.peak_time_us, r.peak_by_us) == (
        o.peak_bytes,
        o.peak_allocs,
        o.peak_time_us,
        o.peak_by_us,
    )
    snap = snapshot(r)
    assert snap["stacks"] == o.stacks()
    assert snap["live"] == o.live_allocations()
    assert snap["mmap_pieces"] == o.mmap_pieces()
    assert snap["reserved"] == o.reserved_figures()
    assert snap["reserved_pieces"] == o.reserved_pieces()
    assert snap["reserved_stacks"] == o.reserved_by_stack()
    assert len(snap["live"]) == r.heap_allocations
    assert sum(size for _a, size, _k, _al in snap["live"]) == r.heap_bytes
    assert r.allocator_stats == {k: tuple(v) for k, v in o.allocators.items()}
    assert r.size_histogram == sorted(o.hist.items())
    temporary = {r.stack_key(sid): r.stack_temporary(sid) for sid in range(r.n_stacks)
                 if r.stack_temporary(sid)[1]}
    assert temporary == o.temporary()
    assert (r.temporary_bytes, r.temporary_allocations) == (
        sum(b for b, _ in temporary.values()), sum(c for _, c in temporary.values()))
    return r


slots = st.integers(0, 24)
ops_strategy = st.lists(
    st.one_of(
        st.tuples(
            st.just("alloc"),
            st.integers(1, 2),
            st.sampled_from([MALLOC, CALLOC, PYMALLOC_MALLOC]),
            slots,
            st.integers(0, 5000),
            st.integers(0, 4),
            st.integers(0, 3),
        ),
        st.tuples(
            st.just("free"), st.integers(1, 2), st.sampled_from([FREE_FN, PYMALLOC_FREE]), slots
        ),
        st.tuples(
            st.just("realloc"), st.integers(1, 2), slots, slots, st.integers(1, 9000),
            st.integers(0, 4),
        ),
        st.tuples(
            st.just("mmap"), st.integers(1, 2), st.integers(0, 12), st.integers(0, 5 * PAGE),
            st.integers(0, 4),
        ),
        st.tuples(
            st.just("reserve"), st.integers(1, 2), st.integers(0, 12), st.integers(0, 8 * PAGE),
            st.integers(0, 4),
        ),
        st.tuples(
            st.just("munmap"), st.integers(1, 2), st.integers(0, 16 * PAGE),
            st.integers(0, 6 * PAGE),
        ),
        st.tuples(st.just("tick"), st.integers(0, 20_000)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops_strategy, native=st.booleans(), threshold=st.sampled_from([0, 1, 3]))
def test_random_operations_match_oracle(ops: list[tuple], native: bool,
                                        threshold: int) -> None:
    w, o = build(ops, native=native, threshold=threshold)
    check(w, o)


def test_every_record_type_and_metadata() -> None:
    w = StreamWriter(native=True, pid=77, argv=["x.py", "a b"])
    w.thread(1, 500, "MainThread")
    maps = [["/usr/lib/libc.so.6", 0x7F0000000000, "ab12", [[0, 4096, 5, 0], [8192, 100, 6, 8192]]]]
    w.maps(maps)
    py = w.py_stack([("main", "x.py", 3), ("work", "x.py", 9)])
    nat = w.native_stack([0x7F0000000100, 0x7F0000000200])
    w.alloc(1, MALLOC, 0x1000, 64, py, nat)
    w.tick(1500, 4096)
    w.maps(maps + [["/tmp/libnew.so", 0x7E0000000000, None, [[0, 10, 5, 0]]]])
    w.free(1, FREE_FN, 0x1000)
    w.thread(1, 500, "renamed")
    w.trailer(end_time=1_700_000_003.25, exit_code=3)
    r = read_all(w.data)
    assert r.complete and not r.truncated
    assert r.header["pid"] == 77 and r.header["argv"] == ["x.py", "a b"]
    assert r.header["native"] is True
    assert r.trailer == {"end_time": 1_700_000_003.25, "exit_code": 3}
    assert r.records == len(w.record_ends)
    assert r.codes == {1: ("main", "x.py", 1), 2: ("work", "x.py", 1)}
    assert r.threads == {1: (500, "renamed")}
    assert len(r.maps_history) == 2 and r.maps == r.maps_history[-1]
    assert r.maps[0] == maps[0] and r.maps[1][2] is None
    assert r.py_stack(py) == [(2, 9, True), (1, 3, True)]
    assert r.py_stack(0) == [] and r.native_stack(0) == []
    assert r.native_stack(nat) == [0x7F0000000200, 0x7F0000000100]
    assert r.history == [(1500, 64, 4096)]
    assert r.last_time_us == 1500
    assert (r.peak_bytes, r.peak_time_us, r.heap_bytes) == (64, 0, 0)
    assert r.stack_key(0) == (py, nat, 1)
    assert r.stack_counters(0) == (64, 1, 0, 0, 64, 1)
    with pytest.raises(IndexError):
        r.stack_counters(1)
    with pytest.raises(IndexError):
        r.py_stack(99)


def test_realloc_chain_grow_and_shrink() -> None:
    w = StreamWriter()
    py = w.py_stack([("grow", "r.py", 4)])
    w.alloc(1, MALLOC, 0x1000, 100, py)
    sizes = [200, 5000, 50, 70_000, 10]
    addrs = [0x1000, 0x2000, 0x2000, 0x9000, 0x3000]
    prev = 0x1000
    for size, addr in zip(sizes, addrs, strict=True):
        w.free(1, REALLOC, prev)
        w.alloc(1, REALLOC, addr, size, py)
        prev = addr
    r = read_all(w.data)
    assert r.total_allocations == 6 and r.total_allocated_bytes == 100 + sum(sizes)
    assert (r.heap_bytes, r.heap_allocations) == (10, 1)
    assert (r.peak_bytes, r.peak_allocations) == (70_000, 1)
    assert r.total_frees == 5
    assert r.allocator_stats == {MALLOC: (1, 100), REALLOC: (5, sum(sizes))}
    assert r.live_allocations() == [(0x3000, 10, 0, REALLOC)]


def test_munmap_partial_split_and_multi_range() -> None:
    w = StreamWriter()
    py = w.py_stack([("m", "m.py", 1)])
    a, b = MMAP_BASE, MMAP_BASE + 16 * PAGE
    w.alloc(1, MMAP, a, 8 * PAGE, py)
    w.alloc(1, MMAP, b, 4 * PAGE, py)
    w.free(1, MUNMAP, a + 2 * PAGE, 2 * PAGE)  # split the first in two
    r = read_all(w.data)
    assert (r.heap_bytes, r.heap_allocations) == (10 * PAGE, 2)
    assert [x[:2] for x in r.mmap_pieces()] == [
        (a, 2 * PAGE),
        (a + 4 * PAGE, 4 * PAGE),
        (b, 4 * PAGE),
    ]
    assert sorted(r.live_allocations()) == [(a, 6 * PAGE, 0, MMAP), (b, 4 * PAGE, 0, MMAP)]
    w.free(1, MUNMAP, a + 6 * PAGE, 11 * PAGE)  # tail of piece 2, the gap, head of the second
    r = read_all(w.data)
    assert (r.heap_bytes, r.heap_allocations) == (2 * PAGE + 2 * PAGE + 3 * PAGE, 2)
    w.free(1, MUNMAP, a - PAGE, 40 * PAGE)  # one munmap covering everything left
    r = read_all(w.data)
    assert (r.heap_bytes, r.heap_allocations, r.live_allocations()) == (0, 0, [])
    assert r.total_frees == 3 and r.peak_bytes == 12 * PAGE
    assert r.stack_counters(0) == (12 * PAGE, 2, 0, 0, 12 * PAGE, 2)


def test_unknown_frees_are_ignored() -> None:
    w = StreamWriter(attached=True)
    w.free(1, FREE_FN, 0xDEAD0)
    w.free(1, MUNMAP, MMAP_BASE, PAGE)
    w.alloc(1, MALLOC, 0x1000, 10)
    w.free(1, FREE_FN, 0x1010)
    r = read_all(w.data)
    assert (r.heap_bytes, r.total_frees, r.ignored_frees) == (10, 0, 3)


def test_threads_are_separate_stacks() -> None:
    w = StreamWriter()
    py = w.py_stack([("run", "t.py", 2)])
    for thread in range(1, 9):
        w.thread(thread, 100 + thread, f"T{thread}")
        for i in range(thread):
            w.alloc(thread, MALLOC, 0x100000 * thread + 16 * i, 8)
            w.alloc(thread, MALLOC, 0x100000 * thread + 0x8000 + 16 * i, 24, py)
    r = read_all(w.data)
    assert r.n_stacks == 16
    by_key = {r.stack_key(s): r.stack_counters(s) for s in range(r.n_stacks)}
    for thread in range(1, 9):
        assert by_key[(0, 0, thread)][:4] == (8 * thread, thread, 8 * thread, thread)
        assert by_key[(py, 0, thread)][:4] == (24 * thread, thread, 24 * thread, thread)
    assert r.total_allocations == 2 * 36 and r.heap_bytes == 32 * 36


def test_take_changed_reports_only_what_changed() -> None:
    w = StreamWriter()
    p1 = w.py_stack([("a", "x.py", 1)])
    p2 = w.py_stack([("b", "x.py", 2)])
    w.alloc(1, MALLOC, 0x10, 5, p1)
    w.alloc(1, MALLOC, 0x20, 5, p2)
    r = StreamReader()
    r.feed(w.data)
    assert sorted(r.take_changed()) == [0, 1]
    assert r.take_changed() == []
    w2 = StreamWriter(header=False)
    w2.chunks = []  # continue the same stream: only records, no magic
    w2._last_addr = w._last_addr  # and the address deltas go on from where w stopped
    w2.free(1, FREE_FN, 0x20)
    w2.free(1, FREE_FN, 0x999)  # unknown: changes nothing
    r.feed(w2.data)
    assert r.take_changed() == [1]


def test_duplicate_alloc_drops_the_old_block() -> None:
    w = StreamWriter()
    w.alloc(1, MALLOC, 0x10, 100)
    w.alloc(1, MALLOC, 0x10, 30)
    r = read_all(w.data)
    assert (r.heap_bytes, r.heap_allocations, r.implicit_frees) == (30, 1, 1)


def test_large_random_stream_matches_oracle() -> None:
    """Thousands of stacks and addresses: exercises hash-map growth and deletion."""
    rng = random.Random(7)
    ops: list[tuple] = []
    for _ in range(6000):
        x = rng.random()
        if x < 0.55:
            ops.append(("alloc", rng.randint(1, 2), MALLOC, rng.randint(0, 3000),
                        rng.randint(0, 20000), rng.randint(0, 4), rng.randint(0, 3)))
        elif x < 0.9:
            ops.append(("free", 1, FREE_FN, rng.randint(0, 3000)))
        elif x < 0.93:
            ops.append(("mmap", 1, rng.randint(0, 40), rng.randint(1, 9 * PAGE), rng.randint(0, 4)))
        elif x < 0.94:
            ops.append(("reserve", 1, rng.randint(0, 40), rng.randint(1, 12 * PAGE),
                        rng.randint(0, 4)))
        elif x < 0.96:
            ops.append(("munmap", 1, rng.randint(0, 48 * PAGE), rng.randint(1, 9 * PAGE)))
        else:
            ops.append(("tick", rng.randint(1, 10_000)))
    w, o = build(ops, native=True)
    check(w, o)


def test_size_histogram_buckets_up_to_64_bits() -> None:
    w = StreamWriter()
    sizes = [0, 1, 2, 3, 4096, 4097, (1 << 40) + 5, (1 << 62) + 1]
    for i, size in enumerate(sizes):
        w.alloc(1, MALLOC, 0x1000 + 16 * i, size)
    r = read_all(w.data)
    assert r.size_histogram == [(0, 1), (1, 1), (2, 2), (4096, 2), (1 << 40, 1), (1 << 62, 1)]
    assert r.total_allocated_bytes == sum(sizes)


def _canonical(snapshot: list) -> list:
    return sorted(snapshot, key=lambda o: (o[1], o[0]))


def test_maps_delta_rebuilds_every_full_snapshot() -> None:
    """Format 3: MAPS then MAPS_DELTAs give the same snapshots as full MAPS each time
    (objects loaded, unloaded, replaced at the same load base, loaded again)."""
    libc = ["/usr/lib/libc.so.6", 0x7F0000000000, "ab12", [[0, 4096, 5, 0], [8192, 9, 6, 8192]]]
    exe = ["/usr/bin/python3", 0, None, [[0, 8192, 5, 0]]]
    a = ["/tmp/liba.so", 0x7E0000000000, "aa", [[0, 10, 5, 0]]]
    b = ["/tmp/libb.so", 0x7D0000000000, None, [[0, 20, 5, 0]]]
    a2 = ["/tmp/liba2.so", 0x7E0000000000, "a2", [[0, 30, 5, 0]]]  # reuses a's load base
    a_again = ["/tmp/liba.so", 0x7C0000000000, "aa", [[0, 10, 5, 0]]]
    snapshots = [[exe, libc], [exe, libc, a], [exe, libc, a, b], [exe, libc, a2, b],
                 [exe, libc, a2], [exe, libc, a2, a_again]]
    full, delta = StreamWriter(format=2), StreamWriter(format=3)
    for w in (full, delta):
        w.thread(1, 500, "MainThread")
    previous: list = []
    for i, snap in enumerate(snapshots):
        full.maps(snap)
        if i == 0:
            delta.maps(snap)
        else:
            gone = [o[1] for o in previous if o not in snap]
            delta.maps_delta(gone, [o for o in snap if o not in previous])
        full.alloc(1, MALLOC, 0x1000 * (i + 1), 8)
        delta.alloc(1, MALLOC, 0x1000 * (i + 1), 8)
        previous = snap
    full.trailer()
    delta.trailer()
    got_full, got_delta = read_all(full.data), read_all(delta.data)
    assert got_delta.complete and got_delta.error is None
    assert [_canonical(s) for s in got_delta.maps_history] == [_canonical(s) for s in snapshots]
    assert [_canonical(s) for s in got_full.maps_history] == [_canonical(s) for s in snapshots]
    assert _canonical(got_delta.maps) == _canonical(snapshots[-1])
    assert len(delta.data) < len(full.data)
    # a delta cut anywhere waits for the rest, then gives the same snapshots
    cut = read_all(delta.data, chunks=[len(delta.data) // 3, 7])
    assert [_canonical(s) for s in cut.maps_history] == [_canonical(s) for s in snapshots]
