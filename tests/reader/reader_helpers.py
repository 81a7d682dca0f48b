"""Shared helpers of the reader tests: read a stream, snapshot every aggregate of a reader."""

from __future__ import annotations

from typing import Any

from memtrace_core.reader import StreamReader


def read_all(data: bytes, chunks: list[int] | None = None) -> StreamReader:
    """Feed data whole, or cut at the given chunk sizes (the rest in one last piece)."""
    reader = StreamReader()
    if chunks is None:
        reader.feed(data)
    else:
        pos = 0
        for size in chunks:
            reader.feed(data[pos : pos + size])
            pos += size
        reader.feed(memoryview(data)[pos:])
    reader.finish()
    return reader


def snapshot(r: StreamReader) -> dict[str, Any]:
    """Everything the reader exposes, with stack ids replaced by their keys."""
    keys = [r.stack_key(sid) for sid in range(r.n_stacks)]
    return {
        "header": r.header,
        "trailer": r.trailer,
        "complete": r.complete,
        "records": r.records,
        "codes": r.codes,
        "threads": r.threads,
        "maps": r.maps,
        "maps_history": r.maps_history,
        "totals": (
            r.total_allocated_bytes,
            r.total_allocations,
            r.total_frees,
            r.heap_bytes,
            r.heap_allocations,
            r.peak_bytes,
            r.peak_allocations,
            r.peak_time_us,
            r.peak_by_us,
            r.last_time_us,
        ),
        "allocators": r.allocator_stats,
        "hist": r.size_histogram,
        "history": r.history,
        "stacks": {keys[sid]: r.stack_counters(sid) for sid in range(r.n_stacks)},
        "live": sorted((a, s, keys[sid], al) for a, s, sid, al in r.live_allocations()),
        "mmap_pieces": [(a, s, keys[sid]) for a, s, sid in r.mmap_pieces()],
        "reserved": (r.reserved_bytes, r.reserved_mappings, r.reserved_peak_bytes,
                     r.total_reserved_bytes, r.total_reservations),
        "reserved_pieces": [(a, s, keys[sid]) for a, s, sid in r.reserved_pieces()],
        "reserved_stacks": {keys[sid]: (b, n) for sid, b, n in r.reserved_stacks()},
        "py_stacks": {k[0]: r.py_stack(k[0]) for k in keys},
        "native_stacks": {k[1]: r.native_stack(k[1]) for k in keys},
    }
