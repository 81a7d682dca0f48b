"""Address space reserved, not allocated (mmap with PROT_NONE, or MAP_NORESERVE of 1 GiB or
more): allocators' arenas (Arrow's mimalloc reserves 1 GiB) and runtimes' heaps. Such a
mapping is recorded apart from the heap, where it was made, and munmap and MAP_FIXED take
its ranges back; a MAP_FIXED mapping that commits part of one is an mmap allocation of its
own, and a smaller MAP_NORESERVE mapping (an allocator's extent: jemalloc's) is memory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.tracer.tracer_support import live_at, stacks_at, totals_at

MiB = 1 << 20
MMAP = 9

PROGRAM = """\
import ctypes, os

lib = ctypes.CDLL(os.environ["MT_RESERVE_LIB"])
for name in ("mtr_noreserve", "mtr_none", "mtr_commit", "mtr_plain"):
    getattr(lib, name).restype = ctypes.c_void_p
lib.mtr_commit.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
lib.mtr_release.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MiB = 1 << 20
arena = heap = used = plain = extent = 0  # bound here: binding a new global allocates at its line
lib.mtr_commit(None, 0), lib.mtr_release(None, 0)  # ctypes' first calls allocate: here

arena = lib.mtr_noreserve(1024 * MiB)  # @noreserve
heap = lib.mtr_none(256 * MiB)  # @none
used = lib.mtr_commit(heap + MiB, 4 * MiB)  # @commit
plain = lib.mtr_plain(2 * MiB)  # @plain
extent = lib.mtr_noreserve(4 * MiB)  # @extent
assert lib.mtr_release(arena + 512 * MiB, 512 * MiB) == 0  # @trim
assert lib.mtr_release(plain, 2 * MiB) == 0
print("ok", used == heap + MiB)
"""


@pytest.fixture(scope="module")
def reserve_lib(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reserve") / "libmtreserve.so"
    source = Path(__file__).resolve().parents[1] / "cfixtures" / "mtreserve.c"
    proc = subprocess.run(["gcc", "-g", "-O1", "-fPIC", "-shared", "-Wall", str(source), "-o",
                           str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module", params=["exact", "sampled"])
def traced(request, tmp_path_factory, mt, reserve_lib):
    """The program under `memtrace run`, exact and sampled (mappings are never sampled)."""
    options = ("--sample", "64KiB") if request.param == "sampled" else ()
    saved = dict(mt.env)
    mt.env["MT_RESERVE_LIB"] = str(reserve_lib)
    try:
        run = mt.trace(tmp_path_factory.mktemp(request.param), PROGRAM, options=options)
    finally:
        mt.env.clear()
        mt.env.update(saved)
    run.check()
    assert run.proc.stdout == b"ok True\n"
    return run


def _reserved_at(reader, line: int) -> tuple[int, int]:
    sids = set(stacks_at(reader, "<module>", line))
    rows = [(size, n) for sid, size, n in reader.reserved_stacks() if sid in sids]
    return sum(r[0] for r in rows), sum(r[1] for r in rows)


def test_reservations_are_kept_apart_from_the_heap(traced):
    reader, lines = traced.reader, traced.lines
    # half the 1 GiB arena unmapped; the 256 MiB reservation less the 4 MiB committed in it
    assert _reserved_at(reader, lines["noreserve"]) == (512 * MiB, 1)
    assert _reserved_at(reader, lines["none"]) == (252 * MiB, 1)
    assert (reader.reserved_bytes, reader.reserved_mappings) == (764 * MiB, 2)
    assert reader.reserved_peak_bytes == 1280 * MiB
    assert (reader.total_reserved_bytes, reader.total_reservations) == (1280 * MiB, 2)
    # in no heap figure (the interpreter itself may allocate a few hundred bytes at a line;
    # sampled, one of them drawn stands for about the mean, 64 KiB: 3.10 drew one in CI)
    most = 4096 if not reader.sample_bytes else 4 * reader.sample_bytes
    for name in ("noreserve", "none"):
        got = totals_at(reader, "<module>", lines[name])
        assert got.bytes < most and got.leaked_bytes == 0, (name, got)
        assert live_at(reader, "<module>", lines[name]) == [], name
    assert reader.peak_bytes < 64 * MiB and reader.heap_bytes < 64 * MiB
    assert all(size < 64 * MiB for _a, size, _s, _k in reader.live_allocations())
    # the committed range is an mmap allocation, in use; the plain mapping came and went
    assert [(size, kind) for _a, size, kind in live_at(reader, "<module>", lines["commit"])] \
        == [(4 * MiB, MMAP)]
    plain = totals_at(reader, "<module>", lines["plain"])
    assert 2 * MiB <= plain.bytes < 2 * MiB + most and plain.leaked_bytes == 0, plain
    # a MAP_NORESERVE extent under 1 GiB holds what it was mapped for: memory in use
    assert [(size, kind) for _a, size, kind in live_at(reader, "<module>", lines["extent"])] \
        == [(4 * MiB, MMAP)]
    assert _reserved_at(reader, lines["extent"]) == (0, 0)


def test_the_reservation_left_is_two_ranges_around_the_commit(traced):
    reader, lines = traced.reader, traced.lines
    none = set(stacks_at(reader, "<module>", lines["none"]))
    pieces = [(a, size) for a, size, sid in reader.reserved_pieces() if sid in none]
    assert len(pieces) == 2, pieces
    (low, low_size), (high, high_size) = pieces
    assert (low_size, high - low, high_size) == (MiB, 5 * MiB, 251 * MiB)
    commit = set(stacks_at(reader, "<module>", lines["commit"]))
    assert [(a, size) for a, size, sid in reader.mmap_pieces() if sid in commit] == [
        (low + MiB, 4 * MiB)]


def test_stats_say_what_is_reserved_and_where(traced, mt):
    stats = traced.stats
    reserved = stats["reserved"]
    assert {k: reserved[k] for k in ("bytes", "mappings", "peak_bytes", "total_bytes",
                                     "total_mappings")} == {
        "bytes": 764 * MiB, "mappings": 2, "peak_bytes": 1280 * MiB,
        "total_bytes": 1280 * MiB, "total_mappings": 2}
    assert [(e["line"], e["bytes"], e["mappings"]) for e in reserved["locations"]] == [
        (traced.lines["noreserve"], 512 * MiB, 1), (traced.lines["none"], 252 * MiB, 1)]
    assert "mmap_reserve" not in stats["allocators"]
    big = {e["line"] for e in stats["top_locations"] if e["bytes"] >= MiB}
    assert traced.lines["noreserve"] not in big and traced.lines["none"] not in big
    text = mt.cli("stats", str(traced.capture), cwd=traced.capture.parent)
    assert text.returncode == 0, text.stderr.decode()
    out = text.stdout.decode()
    assert "reserved       764.0 MiB (801112064 B) of address space in 2 mappings at the " \
           "end (1.2 GiB at most), not counted above:" in out, out
    assert f"most of it made at <module> (prog.py:{traced.lines['noreserve']})" in out, out
