"""Ground truth of the C fixtures and helpers that look things up in a capture.

The expected figures below mirror tests/cfixtures/*.c exactly; the helpers read the capture
through the public reader API (docs/READER_API.md) and `stats --json`.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PAGE = 4096

# allocator codes (docs/FORMAT.md)
MALLOC, CALLOC, REALLOC, POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN, VALLOC, PVALLOC = range(1, 9)
MMAP, FREE, MUNMAP, REALLOCARRAY = 9, 10, 11, 12
ALLOCATOR_NAMES = {
    MALLOC: "malloc",
    CALLOC: "calloc",
    REALLOC: "realloc",
    POSIX_MEMALIGN: "posix_memalign",
    ALIGNED_ALLOC: "aligned_alloc",
    MEMALIGN: "memalign",
    VALLOC: "valloc",
    PVALLOC: "pvalloc",
    MMAP: "mmap",
    REALLOCARRAY: "reallocarray",
}


@dataclass(frozen=True)
class Expect:
    """Exact figures of one fixture call: everything ever allocated and what stays."""

    count: int
    bytes: int
    leaked_count: int
    leaked_bytes: int


# mtext.leak_pattern: mt_outer -> mt_middle x3 -> inline helper (freed) / mt_leaf (kept)
LEAK_INLINE_SIZES = [4000037 + 1009 * i for i in range(3)]
LEAK_LEAF_SIZES = [5000011 + 1013 * i for i in range(3)]
LEAK_PATTERN = Expect(
    count=6,
    bytes=sum(LEAK_INLINE_SIZES) + sum(LEAK_LEAF_SIZES),
    leaked_count=3,
    leaked_bytes=sum(LEAK_LEAF_SIZES),
)
CALLOC_TEST = Expect(2, 3 * 10007 + 7 * 1001, 1, 3 * 10007)
REALLOC_TEST = Expect(5, 11003 + 15013 + 3001 + 2003 + 17011, 1, 17011)
REALLOCARRAY_TEST = Expect(2, 5 * 1001 + 9 * 1001, 1, 9 * 1001)
ALIGNED_SIZES = {POSIX_MEMALIGN: 12345, ALIGNED_ALLOC: 256 * 41, MEMALIGN: 23456, VALLOC: 13579}
ALIGNED_TEST = Expect(4, sum(ALIGNED_SIZES.values()), 2, 12345 + 23456)
MMAP_TEST = Expect(2, 11 * PAGE, 1, 6 * PAGE)
MMAP_SPLIT_BYTES = (5 * PAGE, 4 * PAGE)  # allocated, left after a middle page is unmapped
MMAP64_TEST = Expect(1, 4 * PAGE, 1, 4 * PAGE)

# mtext.churn(i) on 8 Python threads and mtext.pthreads_test() (8 pthreads mtpth-0..7)
CHURN = 20000
PY_THREADS = Expect(
    8 * (CHURN + 1),
    sum(CHURN * (1000 + i) + 7000 + i for i in range(8)),
    8,
    sum(7000 + i for i in range(8)),
)
C_THREADS = Expect(
    8 * (CHURN + 1),
    sum(CHURN * (3000 + i) + 9000 + i for i in range(8)),
    8,
    sum(9000 + i for i in range(8)),
)

# libmtlib.so mt_lib_alloc and libmtdl2.so mt2_alloc
MTLIB_SIZES = [6000029 + 1031 * i for i in range(4)]
MTLIB_ALLOC = Expect(4, sum(MTLIB_SIZES), 2, MTLIB_SIZES[1] + MTLIB_SIZES[3])
MTDL2_ALLOC = Expect(2, 7000003 + 7001009, 2, 7000003 + 7001009)


@dataclass
class Totals:
    """Counters summed over the stacks of one location."""

    count: int = 0
    bytes: int = 0
    leaked_count: int = 0
    leaked_bytes: int = 0

    def as_expect(self) -> Expect:
        return Expect(self.count, self.bytes, self.leaked_count, self.leaked_bytes)


def innermost(reader: Any, sid: int) -> tuple[str, str, int] | None:
    """(qualname, filename, line) of a stack's innermost Python frame, None if none."""
    pynode = reader.stack_key(sid)[0]
    frames = reader.py_stack(pynode)
    if not frames:
        return None
    code_id, line, _entry = frames[0]
    name, filename, _first = reader.codes[code_id]
    return name, filename, line


def stacks_at(reader: Any, function: str, line: int) -> list[int]:
    """Stack ids whose innermost Python frame is FUNCTION at LINE."""
    found = []
    for sid in range(reader.n_stacks):
        where = innermost(reader, sid)
        if where is not None and where[0] == function and where[2] == line:
            found.append(sid)
    return found


def totals_at(reader: Any, function: str, line: int) -> Totals:
    """Everything allocated from FUNCTION at LINE, and what of it is still in use."""
    total = Totals()
    for sid in stacks_at(reader, function, line):
        alloc_bytes, alloc_count, live_bytes, live_count, _pb, _pc = reader.stack_counters(sid)
        total.count += alloc_count
        total.bytes += alloc_bytes
        total.leaked_count += live_count
        total.leaked_bytes += live_bytes
    return total


def live_at(reader: Any, function: str, line: int) -> list[tuple[int, int, int]]:
    """(address, size, allocator) of allocations still in use made at FUNCTION:LINE."""
    sids = set(stacks_at(reader, function, line))
    return sorted(
        (address, size, allocator)
        for address, size, sid, allocator in reader.live_allocations()
        if sid in sids
    )


def stats_location(stats: dict[str, Any], function: str, line: int) -> dict[str, Any] | None:
    """The `top_locations` entry of FUNCTION at LINE in `stats --json` output."""
    for entry in stats["top_locations"]:
        if entry["function"] == function and entry["line"] == line:
            return entry
    return None


def function_ranges(library: Path) -> dict[str, tuple[int, int]]:
    """{name: (start, end)} of the defined functions of an ELF file, from `nm -S`; read
    once per version of the file (a test may name thousands of stacks)."""
    st = library.stat()
    return dict(_function_ranges(str(library), st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=64)
def _function_ranges(
    library: str, _mtime_ns: int, _size: int
) -> tuple[tuple[str, tuple[int, int]], ...]:
    out = subprocess.run(
        ["nm", "-S", "--defined-only", str(library)], capture_output=True, text=True, check=True
    ).stdout
    ranges = {}
    for row in out.splitlines():
        parts = row.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            start, size = int(parts[0], 16), int(parts[1], 16)
            ranges[parts[3]] = (start, start + size)
    return tuple(ranges.items())


def module_of(maps: list[Any], ip: int) -> tuple[str, int] | None:
    """(path, offset from load base) of the loaded object whose segment holds IP."""
    for path, load_base, _build_id, segments in maps:
        for p_vaddr, p_memsz, _flags, _offset in segments:
            if load_base + p_vaddr <= ip < load_base + p_vaddr + p_memsz:
                return path, ip - load_base
    return None


def functions_on_stack(
    reader: Any, nativenode: int, library: Path, maps: list[Any] | None = None
) -> list[str]:
    """Names of LIBRARY's functions holding the return addresses of a native stack,
    innermost first (ip - 1 is looked up: a return address may follow the function)."""
    ranges = function_ranges(library)
    real = library.resolve()
    names = []
    for ip in reader.native_stack(nativenode):
        where = module_of(maps if maps is not None else reader.maps, ip)
        if where is None or Path(where[0]).resolve() != real:
            continue
        for name, (start, end) in ranges.items():
            if start <= where[1] - 1 < end:
                names.append(name)
    return names


def thread_of(reader: Any, sid: int) -> int:
    return reader.stack_key(sid)[2]


def totals_of_threads(reader: Any, thread_ids: set[int]) -> Totals:
    """Counters summed over every stack of the given thread indices."""
    total = Totals()
    for sid in range(reader.n_stacks):
        if thread_of(reader, sid) in thread_ids:
            alloc_bytes, alloc_count, live_bytes, live_count, _pb, _pc = reader.stack_counters(sid)
            total.count += alloc_count
            total.bytes += alloc_bytes
            total.leaked_count += live_count
            total.leaked_bytes += live_bytes
    return total


def tree_path_to(tree: dict[str, Any], own_bytes: int) -> list[dict[str, Any]]:
    """Frames of `memtrace tree --json` from the root to the node holding exactly
    `own_bytes` bytes of its own (iterative: native trees may be thousands deep)."""
    todo = [(child, [child]) for child in tree["children"]]
    while todo:
        node, path = todo.pop()
        if node["own_bytes"] == own_bytes:
            return path
        todo.extend((child, path + [child]) for child in node["children"])
    raise AssertionError(f"no node with {own_bytes} own bytes")


def build_fixture(directory: Path, name: str) -> Path:
    """tests/cfixtures/NAME.c compiled into DIRECTORY/libNAME.so (threads allowed); a
    compiler error fails the test with gcc's message."""
    out = directory / f"lib{name}.so"
    source = Path(__file__).resolve().parents[1] / "cfixtures" / f"{name}.c"
    proc = subprocess.run(["gcc", "-g", "-O1", "-fPIC", "-shared", "-pthread", "-Wall",
                           str(source), "-o", str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"gcc failed:\n{proc.stderr}", pytrace=False)
    return out
