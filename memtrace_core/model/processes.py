"""All the processes of a `--follow-fork` run read as one: the program's capture and its
children's (FILE.PID), merged by frame, so the worker function that leaks in every Pool
worker is one node with the bytes of all of them.

`MergedReader` answers the call tree's questions (the reader protocol the tree builder uses
for any reader that is not the C one) over several readers. Ids that are per process are
tagged with the process's index: stack ids are offset, Python code ids and stack node ids
carry the index above bit 40, return addresses above bit 56 (user space ends below bit 47;
the tracer's cut markers stay as they are), thread ids above bit 24. Frames are interned by
name, file and line, so the same code in two processes meets in one node; a native address
is named through its own process's maps (`module_lookup`), and the names themselves (keyed
by library, build id and offset) are shared.

Figures: heap, counts and totals are the sums, exact. Each stack's peak figures are its
process's own (at that process's peak). The timeline is the processes' samples on the
program's clock (each capture's start time), summed at every sample; the peak of the sum
is taken at those instants (each process's own peak stays exact in its own capture).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from memtrace_core.frames import CUT_MARKER_BASE
from memtrace_core.symbols.modmap import HistoryMap

NODE_SHIFT = 40
IP_SHIFT = 56
THREAD_SHIFT = 24
_NODE_MASK = (1 << NODE_SHIFT) - 1
_IP_MASK = (1 << IP_SHIFT) - 1
_THREAD_MASK = (1 << THREAD_SHIFT) - 1
MAX_PROCESSES = 255


def tag_ip(ip: int, k: int) -> int:
    return ip if k == 0 or ip >= CUT_MARKER_BASE else ip | (k << IP_SHIFT)


def split_ip(ip: int) -> tuple[int, int]:
    """(process index, its own address)."""
    if ip >= CUT_MARKER_BASE:
        return 0, ip
    return ip >> IP_SHIFT, ip & _IP_MASK


class MergedCodes:
    """code id -> (name, file, first line) over every process's code table."""

    def __init__(self, readers: Sequence) -> None:
        self._tables = [r.codes for r in readers]

    def get(self, code: int, default=None):
        return self._tables[code >> NODE_SHIFT].get(code & _NODE_MASK, default)

    def __getitem__(self, code: int):
        return self._tables[code >> NODE_SHIFT][code & _NODE_MASK]

    def __len__(self) -> int:
        return sum(len(t) for t in self._tables)


class MergedNames:
    """The names each capture carries (keyed by library, build id and offset: the same in
    every process), the first that has one."""

    def __init__(self, parts: list) -> None:
        self.parts = [p for p in parts if p is not None and len(p)]
        self.warning = next((p.warning for p in parts if p is not None and p.warning), None)

    def get(self, path: str, build_id: str | None, vaddr: int):
        for part in self.parts:
            found = part.get(path, build_id, vaddr)
            if found is not None:
                return found
        return None

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)


class MergedReader:
    """Several finished (or cut-off) captures' readers as one; the first is the program."""

    def __init__(self, readers: Sequence, paths: Sequence[str]) -> None:
        if not readers:
            raise ValueError("no reader")
        if len(readers) > MAX_PROCESSES:
            raise ValueError(f"more than {MAX_PROCESSES} processes")
        self.readers = list(readers)
        self.paths = list(paths)
        first = self.readers[0]
        self.header = dict(first.header or {})
        self.header["native"] = any((r.header or {}).get("native") for r in self.readers)
        self.header["processes"] = [int((r.header or {}).get("pid", 0)) for r in self.readers]
        self.trailer = first.trailer
        self.codes = MergedCodes(self.readers)
        self._maps = [HistoryMap() for _ in self.readers]
        self._offsets: list[int] = []
        n = 0
        for r in self.readers:
            self._offsets.append(n)
            n += r.n_stacks
        self.n_stacks = n
        self.threads = {}
        for k, r in enumerate(self.readers):
            pid = (r.header or {}).get("pid", "?")
            for tid, (os_tid, name) in r.threads.items():
                self.threads[tid | (k << THREAD_SHIFT)] = (os_tid, f"{name} (pid {pid})")
        self.history = self._merged_history()
        self._first_take = True

    # -- the tree builder's questions -------------------------------------------------------
    def _split(self, sid: int) -> tuple[int, int]:
        for k in range(len(self._offsets) - 1, -1, -1):
            if sid >= self._offsets[k]:
                return k, sid - self._offsets[k]
        raise IndexError(f"unknown stack id {sid}")

    def stack_key(self, sid: int) -> tuple[int, int, int]:
        k, local = self._split(sid)
        py, nat, thread = self.readers[k].stack_key(local)
        tag = k << NODE_SHIFT
        return py | tag, nat | tag, thread | (k << THREAD_SHIFT)

    def stack_counters(self, sid: int) -> tuple:
        k, local = self._split(sid)
        return self.readers[k].stack_counters(local)

    def stack_temporary(self, sid: int) -> tuple:
        k, local = self._split(sid)
        return self.readers[k].stack_temporary(local)

    def py_stack(self, node: int) -> list:
        k = node >> NODE_SHIFT
        tag = k << NODE_SHIFT
        return [(code | tag, line, entry)
                for code, line, entry in self.readers[k].py_stack(node & _NODE_MASK)]

    def native_stack(self, node: int) -> list:
        k = node >> NODE_SHIFT
        return [tag_ip(ip, k) for ip in self.readers[k].native_stack(node & _NODE_MASK)]

    def take_changed(self) -> list:
        """Every stack, once (the captures are read: nothing changes after)."""
        for r in self.readers:
            r.take_changed()
        if not self._first_take:
            return []
        self._first_take = False
        return list(range(self.n_stacks))

    def live_snapshot(self) -> bytes:
        return b"".join(r.live_snapshot() for r in self.readers)

    def stacks(self) -> list:
        out = []
        for sid in range(self.n_stacks):
            out.append((*self.stack_key(sid), *self.stack_counters(sid)))
        return out

    def module_lookup(self, addr: int) -> tuple[str, str | None, int] | None:
        """(path, build id, offset) of a tagged address, through its own process's maps."""
        k, own = split_ip(addr)
        modmap = self._maps[k]
        modmap.update(getattr(self.readers[k], "maps_history", None) or [])
        return modmap.lookup(own)

    # -- figures ----------------------------------------------------------------------------
    def _sum(self, name: str) -> int:
        return sum(getattr(r, name) for r in self.readers)

    heap_bytes = property(lambda self: self._sum("heap_bytes"))
    heap_allocations = property(lambda self: self._sum("heap_allocations"))
    total_allocated_bytes = property(lambda self: self._sum("total_allocated_bytes"))
    total_allocations = property(lambda self: self._sum("total_allocations"))
    total_frees = property(lambda self: self._sum("total_frees"))
    temporary_allocations = property(lambda self: self._sum("temporary_allocations"))
    temporary_bytes = property(lambda self: self._sum("temporary_bytes"))
    records = property(lambda self: self._sum("records"))

    @property
    def untraced_children(self) -> int:
        return sum(int(getattr(r, "untraced_children", 0) or 0) for r in self.readers)

    @property
    def complete(self) -> bool:
        return all(r.complete for r in self.readers)

    @property
    def error(self):
        for path, r in zip(self.paths, self.readers, strict=True):
            if getattr(r, "error", None):
                return f"{path}: {r.error}"
        return None

    @property
    def temporary_threshold(self) -> int:
        return self.readers[0].temporary_threshold

    @property
    def last_time_us(self) -> int:
        ends = [self._start_us(k) + r.last_time_us for k, r in enumerate(self.readers)]
        return max(ends)

    def _start_us(self, k: int) -> int:
        """Process k's start on the program's clock (its capture's start time)."""
        start = (self.readers[k].header or {}).get("start_time")
        origin = (self.readers[0].header or {}).get("start_time")
        if start is None or origin is None:
            return 0
        return max(0, round((start - origin) * 1e6))

    def _merged_history(self) -> list[tuple[int, int, int]]:
        """(t_us, heap, rss) of all processes together, at every process's sample."""
        streams = [[(self._start_us(k) + t, k, heap, rss) for t, heap, rss in r.history]
                   for k, r in enumerate(self.readers)]
        heaps = [0] * len(self.readers)
        rsss = [0] * len(self.readers)
        out: list[tuple[int, int, int]] = []
        for t, k, heap, rss in heapq.merge(*streams):
            heaps[k], rsss[k] = heap, rss
            point = (t, sum(heaps), sum(rsss))
            if out and out[-1][0] == t:
                out[-1] = point
            else:
                out.append(point)
        return out

    @property
    def peak_bytes(self) -> int:
        best = max((h for _t, h, _r in self.history), default=0)
        return max(best, self.heap_bytes, max(r.peak_bytes for r in self.readers))

    @property
    def peak_allocations(self) -> int:
        return max(r.peak_allocations for r in self.readers)

    @property
    def peak_time_us(self) -> int:
        peak = self.peak_bytes
        for t, heap, _rss in self.history:
            if heap == peak:
                return t
        return self.last_time_us


def read_processes(path: str, progress=None, temporary_threshold: int = 1):
    """The capture at `path` and its children's (`path`.PID) as one MergedReader, and the
    merged embedded names (or None)."""
    from memtrace_core.errors import UserError
    from memtrace_core.reader import read_capture, read_names
    from memtrace_core.tracer.children import child_captures

    paths = [str(path)]
    readers = [read_capture(path, progress=progress, temporary_threshold=temporary_threshold)]
    skipped = []
    for child in child_captures(str(path)):
        try:
            readers.append(read_capture(child, temporary_threshold=temporary_threshold))
        except UserError as exc:  # e.g. a worker killed while it started: an empty file
            skipped.append(str(exc))
            continue
        paths.append(child)
    if len(readers) > MAX_PROCESSES:
        raise UserError(f"{path}: {len(readers)} process captures; --all-processes merges "
                        f"at most {MAX_PROCESSES}")
    merged = MergedReader(readers, paths)
    merged.skipped = skipped
    merged.being_written = sum(1 for p, r in zip(paths, readers, strict=True)
                               if not r.complete and _being_written(p))
    names = MergedNames([read_names(p) if (r.header or {}).get("native") else None
                         for p, r in zip(paths, readers, strict=True)])
    return merged, (names if len(names) or names.warning else None)


def _being_written(path: str) -> bool:
    """A process still writes this capture (it holds the writer's lock)."""
    import os

    from memtrace_core.capture_lock import writer_alive

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return writer_alive(fd)
    finally:
        os.close(fd)
