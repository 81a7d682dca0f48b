"""A brute-force model of the reader's semantics (FORMAT.md), written for clarity, not speed.

Tests replay the same operations into the Oracle and into a stream for the real reader and
compare every number. The per-stack peak here is recomputed by scanning every live
allocation at each new peak, the naive way the C reader avoids.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

MMAP, MUNMAP, MMAP_RESERVE = 9, 11, 21

Key = tuple[int, int, int]  # (pynode, nativenode, thread)


@dataclass
class Oracle:
    heap: dict[int, tuple[int, Key, int]] = field(default_factory=dict)  # addr->(size,key,alloc)
    # mmap allocations: id -> (key, list of [start, end) pieces)
    mappings: dict[int, tuple[Key, list[tuple[int, int]]]] = field(default_factory=dict)
    next_mapping: int = 0
    # the mappings that are reservations of address space (MMAP_RESERVE): not heap
    reserved: set[int] = field(default_factory=set)
    reserved_peak: int = 0
    reserved_total: list[int] = field(default_factory=lambda: [0, 0])  # bytes, mappings
    total_bytes: int = 0
    total_allocs: int = 0
    total_frees: int = 0
    ignored_frees: int = 0
    peak_bytes: int = 0
    peak_allocs: int = 0
    peak_time_us: int = 0
    peak_by: int | None = 0  # the first TICK's time after the peak (None: none came yet)
    now_us: int = 0
    alloc_bytes: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    alloc_count: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    peak_stacks: dict[Key, tuple[int, int]] = field(default_factory=dict)
    allocators: dict[int, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    hist: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    # temporary allocations, by the definition itself: each thread's allocations numbered;
    # freed by its own thread with at most `threshold` others numbered in between
    threshold: int = 1
    made: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # thread -> n
    seq: dict[int, tuple[int, int]] = field(default_factory=dict)  # addr -> (thread, number)
    temp: dict[Key, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    # ---- operations ----

    def alloc(self, thread: int, allocator: int, addr: int, size: int, py: int, nat: int):
        key = (py, nat, thread)
        if allocator == MMAP_RESERVE:  # address space, in no heap figure
            self.alloc_count[key] += 0  # the stack exists, with no allocation
            if size:
                self._unmap(addr, addr + size)
                self.mappings[self.next_mapping] = (key, [(addr, addr + size)])
                self.reserved.add(self.next_mapping)
                self.next_mapping += 1
                self.reserved_total[0] += size
                self.reserved_total[1] += 1
                self.reserved_peak = max(self.reserved_peak, self.reserved_bytes)
            return
        self.total_bytes += size
        self.total_allocs += 1
        self.alloc_bytes[key] += size
        self.alloc_count[key] += 1
        self.allocators[allocator][0] += 1
        self.allocators[allocator][1] += size
        bound = 0 if size == 0 else 1 << (size.bit_length() - 1)
        self.hist[bound] += 1
        number = self.made[thread]
        self.made[thread] += 1
        if allocator == MMAP:
            if size == 0:
                return
            self._unmap(addr, addr + size)
            self.mappings[self.next_mapping] = (key, [(addr, addr + size)])
            self.next_mapping += 1
        else:
            self.heap[addr] = (size, key, allocator)  # replaces a block whose free was lost
            self.seq[addr] = (thread, number)
        self._check_peak()

    def free(self, thread: int, allocator: int, addr: int, size: int) -> None:
        if allocator == MUNMAP:
            touched = size > 0 and self._unmap(addr, addr + size)
            if touched == "reserved":
                return  # only reservations: neither a free nor an unknown one
        else:
            block = self.heap.pop(addr, None)
            touched = block is not None
            if touched:
                owner, number = self.seq.pop(addr)
                if owner == thread and self.made[thread] - number - 1 <= self.threshold:
                    self.temp[block[1]][0] += block[0]
                    self.temp[block[1]][1] += 1
        if touched:
            self.total_frees += 1
        else:
            self.ignored_frees += 1

    def tick(self, t_us: int) -> None:
        self.now_us = t_us
        if self.peak_by is None:
            self.peak_by = t_us

    @property
    def peak_by_us(self) -> int:
        return self.now_us if self.peak_by is None else self.peak_by

    def _unmap(self, a: int, b: int) -> bool | str:
        """True when an mmap allocation was touched, "reserved" when only reservations."""
        touched: bool | str = False
        for mid in list(self.mappings):
            key, pieces = self.mappings[mid]
            kept = []
            for start, end in pieces:
                if end <= a or start >= b:
                    kept.append((start, end))
                    continue
                if mid not in self.reserved:
                    touched = True
                elif not touched:
                    touched = "reserved"
                if start < a:
                    kept.append((start, a))
                if end > b:
                    kept.append((b, end))
            if kept:
                self.mappings[mid] = (key, kept)
            else:
                del self.mappings[mid]
                self.reserved.discard(mid)
        return touched

    def _check_peak(self) -> None:
        if self.heap_bytes > self.peak_bytes:
            self.peak_bytes = self.heap_bytes
            self.peak_allocs = self.heap_allocs
            self.peak_time_us = self.now_us
            self.peak_by = None
            self.peak_stacks = self.live_by_stack()

    # ---- views ----

    def _heap_mappings(self) -> list[tuple[Key, list[tuple[int, int]]]]:
        return [m for mid, m in self.mappings.items() if mid not in self.reserved]

    @property
    def heap_bytes(self) -> int:
        return sum(s for s, _, _ in self.heap.values()) + sum(
            e - s for _, pieces in self._heap_mappings() for s, e in pieces
        )

    @property
    def heap_allocs(self) -> int:
        return len(self.heap) + len(self._heap_mappings())

    def live_by_stack(self) -> dict[Key, tuple[int, int]]:
        out: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
        for size, key, _ in self.heap.values():
            out[key][0] += size
            out[key][1] += 1
        for key, pieces in self._heap_mappings():
            out[key][0] += sum(e - s for s, e in pieces)
            out[key][1] += 1
        return {k: (v[0], v[1]) for k, v in out.items()}

    def stacks(self) -> dict[Key, tuple[int, int, int, int, int, int]]:
        """Same shape as StreamReader.stack_counters, keyed by stack key."""
        live = self.live_by_stack()
        return {
            key: (
                self.alloc_bytes[key],
                self.alloc_count[key],
                *live.get(key, (0, 0)),
                *self.peak_stacks.get(key, (0, 0)),
            )
            for key in self.alloc_count
        }

    def temporary(self) -> dict[Key, tuple[int, int]]:
        """(bytes, count) of temporary allocations per stack with any."""
        return {k: (v[0], v[1]) for k, v in self.temp.items() if v[1]}

    def live_allocations(self) -> list[tuple[int, int, Key, int]]:
        """One per allocation; an mmap gives its first mapped byte and its bytes still mapped."""
        out = [(a, s, key, alloc) for a, (s, key, alloc) in self.heap.items()]
        for key, pieces in self._heap_mappings():
            out.append((min(s for s, _ in pieces), sum(e - s for s, e in pieces), key, MMAP))
        return sorted(out)

    def mmap_pieces(self) -> list[tuple[int, int, Key]]:
        return sorted((s, e - s, key) for key, pieces in self._heap_mappings() for s, e in pieces)

    # ---- reservations ----

    @property
    def reserved_bytes(self) -> int:
        return sum(e - s for mid in self.reserved for s, e in self.mappings[mid][1])

    def reserved_figures(self) -> tuple[int, int, int, int, int]:
        """As the reader's (reserved_bytes, reserved_mappings, reserved_peak_bytes,
        total_reserved_bytes, total_reservations)."""
        return (self.reserved_bytes, len(self.reserved), self.reserved_peak,
                *self.reserved_total)

    def reserved_pieces(self) -> list[tuple[int, int, Key]]:
        return sorted((s, e - s, self.mappings[mid][0]) for mid in self.reserved
                      for s, e in self.mappings[mid][1])

    def reserved_by_stack(self) -> dict[Key, tuple[int, int]]:
        out: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
        for mid in self.reserved:
            key, pieces = self.mappings[mid]
            out[key][0] += sum(e - s for s, e in pieces)
            out[key][1] += 1
        return {k: (v[0], v[1]) for k, v in out.items()}
