"""Exact figures of gcc-built C code traced in a real process, checked to the byte.

The mtext extension (tests/cfixtures/mtext.c) allocates exactly known sizes through nested
named C functions; its calls take no arguments and return None, so CPython allocates nothing
of its own on those lines and every figure at a marked line is known exactly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tracer import tracer_support as ts

LEAK_SCRIPT = """\
import mtext


def warm_up():
    mtext.noop()


def make_leaks():
    marker = 1
    mtext.leak_pattern()  # @leak
    return marker


warm_up()
make_leaks()
print("done")
"""


@pytest.fixture(scope="module")
def leak_run(tmp_path_factory, mt):
    """One plain run of LEAK_SCRIPT (shared by the tests below)."""
    return mt.trace(tmp_path_factory.mktemp("leak"), LEAK_SCRIPT).check()


@pytest.fixture(scope="module")
def leak_run_native(tmp_path_factory, mt):
    directory = tmp_path_factory.mktemp("leak_native")
    return mt.trace(directory, LEAK_SCRIPT, options=("--native",)).check()


@pytest.mark.parametrize("mode", ["plain", "native"])
def test_stats_exact_leaks_and_totals_at_the_calling_line(mode, leak_run, leak_run_native):
    run = leak_run if mode == "plain" else leak_run_native
    assert run.proc.stdout == b"done\n"
    stats = run.stats
    line = run.lines["leak"]
    entry = ts.stats_location(stats, "make_leaks", line)
    assert entry is not None, (
        f"make_leaks:{line} missing from top_locations: "
        f"{[(e['function'], e['line'], e['bytes']) for e in stats['top_locations']]}"
    )
    assert Path(entry["file"]).name == "prog.py"
    got = ts.Expect(entry["count"], entry["bytes"], entry["leaked_count"], entry["leaked_bytes"])
    assert got == ts.LEAK_PATTERN
    # the same figures through the reader API, summed over every stack of that line
    assert ts.totals_at(run.reader, "make_leaks", line).as_expect() == ts.LEAK_PATTERN
    # the process-wide figures contain ours
    assert stats["total_allocated_bytes"] >= ts.LEAK_PATTERN.bytes
    assert stats["total_allocations"] >= ts.LEAK_PATTERN.count
    assert stats["leaked_bytes"] >= ts.LEAK_PATTERN.leaked_bytes
    assert stats["leaked_allocations"] >= ts.LEAK_PATTERN.leaked_count
    assert stats["native"] is (mode == "native")
    assert stats["complete"] is True
    command = stats["command"]
    assert "prog.py" in (" ".join(command) if isinstance(command, list) else command)


def test_leaked_blocks_are_the_leaf_blocks(leak_run):
    live = ts.live_at(leak_run.reader, "make_leaks", leak_run.lines["leak"])
    assert sorted(size for _a, size, _k in live) == ts.LEAK_LEAF_SIZES
    assert {kind for _a, _s, kind in live} == {ts.MALLOC}


def test_nothing_attributed_to_the_warm_up_line(leak_run):
    """The extension call itself allocates nothing: the no-op call has no allocations."""
    source = leak_run.script.read_text().splitlines()
    noop_line = next(i for i, t in enumerate(source, 1) if "mtext.noop()" in t)
    assert ts.totals_at(leak_run.reader, "warm_up", noop_line).count == 0


def test_native_stacks_hold_return_addresses_in_the_right_functions(leak_run_native, cbuild):
    """gcc -O1 unrolls mt_outer's loop (3 call sites of mt_middle), so each call may have its
    own stack; every stack must be one of the two shapes, and the shapes add up exactly."""
    reader = leak_run_native.reader
    line = leak_run_native.lines["leak"]
    shapes = {
        ("mt_leaf", "mt_middle", "mt_outer", "leak_pattern"): [0, 0, 0, 0],
        # the static inline helper has no frame: malloc's caller is mt_middle itself
        ("mt_middle", "mt_outer", "leak_pattern"): [0, 0, 0, 0],
    }
    for sid in ts.stacks_at(reader, "make_leaks", line):
        nativenode = reader.stack_key(sid)[1]
        assert nativenode != 0, "a --native capture has an allocation without a native stack"
        # innermost first: return addresses inside the C functions, callee before caller
        names = tuple(ts.functions_on_stack(reader, nativenode, cbuild.ext))
        assert names in shapes, names
        for i, value in enumerate(reader.stack_counters(sid)[:4]):
            shapes[names][i] += value
    leaf, inline = shapes.values()
    leaked = sum(ts.LEAK_LEAF_SIZES)
    assert leaf == [leaked, 3, leaked, 3]
    assert inline == [sum(ts.LEAK_INLINE_SIZES), 3, 0, 0]


def test_native_stack_return_address_follows_the_call_to_malloc(leak_run_native, cbuild):
    """The mt_leaf frame's return address is exactly the instruction after its malloc call."""
    import subprocess

    disasm = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(cbuild.ext)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    body = disasm.split("<mt_leaf>:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    calls = [i for i, row in enumerate(body) if "call" in row and "malloc" in row]
    assert len(calls) == 1, body
    after_call = int(body[calls[0] + 1].split(":")[0], 16)

    reader = leak_run_native.reader
    offsets = set()
    for sid in ts.stacks_at(reader, "make_leaks", leak_run_native.lines["leak"]):
        for ip in reader.native_stack(reader.stack_key(sid)[1]):
            where = ts.module_of(reader.maps, ip)
            if where and Path(where[0]).resolve() == cbuild.ext.resolve():
                offsets.add(where[1])
    assert after_call in offsets


ALLOCATORS_SCRIPT = """\
import mtext


def exercise():
    mtext.calloc_test()  # @calloc
    mtext.realloc_test()  # @realloc
    mtext.reallocarray_test()  # @reallocarray
    mtext.aligned_test()  # @aligned
    mtext.pvalloc_test()  # @pvalloc
    mtext.mmap_test()  # @mmap
    mtext.mmap_split_test()  # @mmap_split
    mtext.mmap64_test()  # @mmap64


exercise()
"""


@pytest.fixture(scope="module")
def allocators_run(tmp_path_factory, mt):
    return mt.trace(tmp_path_factory.mktemp("allocators"), ALLOCATORS_SCRIPT).check()


@pytest.mark.parametrize(
    ("marker", "expect", "kinds"),
    [
        ("calloc", ts.CALLOC_TEST, {ts.CALLOC}),
        ("realloc", ts.REALLOC_TEST, {ts.REALLOC}),
        ("reallocarray", ts.REALLOCARRAY_TEST, {ts.REALLOCARRAY}),
        ("aligned", ts.ALIGNED_TEST, {ts.POSIX_MEMALIGN, ts.MEMALIGN}),
        ("mmap", ts.MMAP_TEST, {ts.MMAP}),
        ("mmap64", ts.MMAP64_TEST, {ts.MMAP}),
    ],
)
def test_allocator_exact_figures(allocators_run, marker, expect, kinds):
    reader = allocators_run.reader
    line = allocators_run.lines[marker]
    assert ts.totals_at(reader, "exercise", line).as_expect() == expect
    live = ts.live_at(reader, "exercise", line)
    assert {kind for _a, _s, kind in live} == kinds
    assert sum(size for _a, size, _k in live) == expect.leaked_bytes


def test_realloc_to_zero_frees_and_the_kept_chain_ends_at_its_last_size(allocators_run):
    live = ts.live_at(allocators_run.reader, "exercise", allocators_run.lines["realloc"])
    assert [(size, kind) for _a, size, kind in live] == [(17011, ts.REALLOC)]


def test_aligned_allocators_keep_their_kind_and_size(allocators_run):
    live = ts.live_at(allocators_run.reader, "exercise", allocators_run.lines["aligned"])
    assert sorted((kind, size) for _a, size, kind in live) == [
        (ts.POSIX_MEMALIGN, 12345),
        (ts.MEMALIGN, 23456),
    ]
    alignment = {ts.POSIX_MEMALIGN: 64, ts.MEMALIGN: 128}
    assert all(address % alignment[kind] == 0 for address, _s, kind in live)


def test_aligned_allocators_process_wide_figures(allocators_run):
    """CPython itself never calls these: the process-wide figures are exactly ours."""
    stats = allocators_run.stats
    for code, size in ts.ALIGNED_SIZES.items():
        name = ts.ALLOCATOR_NAMES[code]
        assert stats["allocators"].get(name) == {"count": 1, "bytes": size}, (
            name,
            stats["allocators"],
        )
        assert allocators_run.reader.allocator_stats.get(code) == (1, size)


def test_pvalloc_recorded_once(allocators_run):
    reader = allocators_run.reader
    line = allocators_run.lines["pvalloc"]
    got = ts.totals_at(reader, "exercise", line)
    # the requested 5000 bytes or glibc's page-rounded 8192: both are honest
    assert got.count == 1 and got.leaked_count == 1
    assert got.bytes == got.leaked_bytes and got.bytes in (5000, 2 * ts.PAGE)
    assert [kind for _a, _s, kind in ts.live_at(reader, "exercise", line)] == [ts.PVALLOC]


def test_partial_munmap_in_the_middle_keeps_both_sides(allocators_run):
    reader = allocators_run.reader
    line = allocators_run.lines["mmap_split"]
    got = ts.totals_at(reader, "exercise", line)
    allocated, left = ts.MMAP_SPLIT_BYTES
    assert got.bytes == allocated
    assert got.leaked_bytes == left
    pieces = sorted((address, size) for address, size, _k in ts.live_at(reader, "exercise", line))
    # one mapping minus its third page: [start, +2 pages) and [start + 3 pages, +2 pages)
    if len(pieces) == 2:
        (a, a_size), (b, b_size) = pieces
        assert (a_size, b_size, b - a) == (2 * ts.PAGE, 2 * ts.PAGE, 3 * ts.PAGE)
    else:
        assert len(pieces) == 1 and pieces[0][1] == left


def test_whole_process_figures_are_self_consistent(allocators_run):
    """The per-stack counters add up to the totals, and the stats agree with the reader."""
    reader = allocators_run.reader
    sums = [0, 0, 0, 0]
    for sid in range(reader.n_stacks):
        for i, value in enumerate(reader.stack_counters(sid)[:4]):
            sums[i] += value
    assert sums == [
        reader.total_allocated_bytes,
        reader.total_allocations,
        reader.heap_bytes,
        reader.heap_allocations,
    ]
    live = reader.live_allocations()
    # an mmap split by a partial munmap is one allocation listed as its pieces
    assert len(live) in (reader.heap_allocations, reader.heap_allocations + 1)
    assert sum(size for _a, size, _s, _k in live) == reader.heap_bytes
    stats = allocators_run.stats
    assert stats["total_allocated_bytes"] == reader.total_allocated_bytes
    assert stats["total_allocations"] == reader.total_allocations
    assert stats["leaked_bytes"] == reader.heap_bytes
    assert stats["leaked_allocations"] == reader.heap_allocations
    assert stats["peak_bytes"] >= reader.heap_bytes
    by_kind = {ts.ALLOCATOR_NAMES.get(k, str(k)): v for k, v in reader.allocator_stats.items()}
    assert sum(count for count, _b in by_kind.values()) == reader.total_allocations
    assert sum(b for _c, b in by_kind.values()) == reader.total_allocated_bytes


def test_stats_top_native_locations_exact(leak_run_native, cbuild):
    """The innermost native frame of each allocation is the return address in the C function
    that called malloc: mt_leaf for the kept blocks, mt_middle (the inlined helper) for the
    freed ones; figures exact, names (when the symbolizer gives them) right."""
    ranges = ts.function_ranges(cbuild.ext)
    found = {}
    for entry in leak_run_native.stats["top_native_locations"]:
        if Path(entry["module"]).resolve() != cbuild.ext.resolve():
            continue
        for name in ("mt_leaf", "mt_middle"):
            start, end = ranges[name]
            if start <= entry["offset"] - 1 < end:
                assert name not in found, (name, found, entry)
                found[name] = entry
    leaf, inline = found["mt_leaf"], found["mt_middle"]
    leaked = sum(ts.LEAK_LEAF_SIZES)
    assert (leaf["bytes"], leaf["count"], leaf["leaked_bytes"], leaf["leaked_count"]) == (
        leaked,
        3,
        leaked,
        3,
    )
    assert (inline["bytes"], inline["count"], inline["leaked_bytes"], inline["leaked_count"]) == (
        sum(ts.LEAK_INLINE_SIZES),
        3,
        0,
        0,
    )
    if "function" in leaf:
        assert leaf["function"] == "mt_leaf"
        assert inline["function"] == "mt_inline_alloc"
