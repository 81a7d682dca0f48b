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

    def __init__(self, readers: list) -> None:
        self._readers = readers  # the merged reader's own list: it grows with it

    def get(self, code: int, default=None):
        return self._readers[code >> NODE_SHIFT].codes.get(code & _NODE_MASK, default)

    def __getitem__(self, code: int):
        return self._readers[code >> NODE_SHIFT].codes[code & _NODE_MASK]

    def __len__(self) -> int:
        return sum(len(r.codes) for r in self._readers)


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
    """Several captures' readers as one; the first is the program's. Readers may still be
    fed (`view --follow --all-processes`: `feed` takes (path, bytes) pieces and starts a
    reader for a capture it has not seen), so stack ids are given in order of appearance:
    stable as the readers grow."""

    def __init__(self, readers: Sequence, paths: Sequence[str],
                 temporary_threshold: int = 1) -> None:
        if not readers:
            raise ValueError("no reader")
        self.readers: list = []
        self.paths: list[str] = []
        self._index: dict[str, int] = {}
        self._global: list[tuple[int, int]] = []  # stack id -> (process, its own stack id)
        self._local: list[list[int]] = []  # per process: its own stack id -> stack id
        self._maps: list[HistoryMap] = []
        self._history_key: tuple = ()
        self._history: list[tuple[int, int, int]] = []
        self.temporary_threshold = temporary_threshold
        self.codes = MergedCodes(self.readers)
        self.skipped: list[str] = []
        self.being_written = 0
        for reader, path in zip(readers, paths, strict=True):
            self.add(reader, path)

    def add(self, reader, path: str) -> None:
        if len(self.readers) >= MAX_PROCESSES:
            raise ValueError(f"more than {MAX_PROCESSES} processes")
        self._index[path] = len(self.readers)
        self.readers.append(reader)
        self.paths.append(path)
        self._local.append([])
        self._maps.append(HistoryMap())

    # -- input (following) ------------------------------------------------------------------
    def feed(self, pieces: list[tuple[str, bytes]]) -> None:
        """New bytes of each capture: [(path, bytes)]; a new path is a new process."""
        from memtrace_core.reader import new_reader

        for path, data in pieces:
            k = self._index.get(path)
            if k is None:
                self.add(new_reader(self.temporary_threshold), path)
                k = len(self.readers) - 1
            self.readers[k].feed(data)
        self._sync()

    def finish(self) -> None:
        for reader in self.readers:
            reader.finish()

    def _sync(self) -> None:
        """Stack ids for the stacks the readers found since the last call."""
        for k, reader in enumerate(self.readers):
            mine = self._local[k]
            for local in range(len(mine), reader.n_stacks):
                mine.append(len(self._global))
                self._global.append((k, local))

    # -- what the captures say ----------------------------------------------------------------
    @property
    def header(self) -> dict:
        out = dict(self.readers[0].header or {})
        if out:
            out["native"] = any((r.header or {}).get("native") for r in self.readers)
            out["processes"] = [int((r.header or {}).get("pid", 0)) for r in self.readers]
        return out

    @property
    def trailer(self):
        return self.readers[0].trailer

    @property
    def threads(self) -> dict:
        out = {}
        for k, r in enumerate(self.readers):
            pid = (r.header or {}).get("pid", "?")
            for tid, (os_tid, name) in r.threads.items():
                out[tid | (k << THREAD_SHIFT)] = (os_tid, f"{name} (pid {pid})")
        return out

    # -- the tree builder's questions -------------------------------------------------------
    @property
    def n_stacks(self) -> int:
        self._sync()
        return len(self._global)

    def stack_key(self, sid: int) -> tuple[int, int, int]:
        k, local = self._global[sid]
        py, nat, thread = self.readers[k].stack_key(local)
        tag = k << NODE_SHIFT
        return py | tag, nat | tag, thread | (k << THREAD_SHIFT)

    def stack_counters(self, sid: int) -> tuple:
        k, local = self._global[sid]
        return self.readers[k].stack_counters(local)

    def stack_temporary(self, sid: int) -> tuple:
        k, local = self._global[sid]
        return self.readers[k].stack_temporary(local)

    def py_stack(self, node: int) -> list:
        k = node >> NODE_SHIFT
        tag = k << NODE_SHIFT
        return [(code | tag, line, entry)
                for code, line, entry in self.readers[k].py_stack(node & _NODE_MASK)]

    def py_frame(self, node: int):
        k = node >> NODE_SHIFT
        frame = self.readers[k].py_frame(node & _NODE_MASK)
        return None if frame is None else (frame[0] | (k << NODE_SHIFT), *frame[1:])

    def native_stack(self, node: int) -> list:
        k = node >> NODE_SHIFT
        return [tag_ip(ip, k) for ip in self.readers[k].native_stack(node & _NODE_MASK)]

    def reserved_stacks(self) -> list:
        self._sync()
        return [(self._local[k][local], size, n)
                for k, r in enumerate(self.readers)
                for local, size, n in r.reserved_stacks()]

    def take_changed(self) -> list:
        """Stack ids whose figures changed since the last call, new ones included."""
        self._sync()
        out = []
        for k, reader in enumerate(self.readers):
            mine = self._local[k]
            out.extend(mine[local] for local in reader.take_changed())
        return out

    def live_snapshot(self) -> bytes:
        from array import array

        self._sync()
        figures = array("q")
        for k, local in self._global:
            c = self.readers[k].stack_counters(local)
            figures.append(c[2])
            figures.append(c[3])
        return figures.tobytes()

    def stacks(self) -> list:
        return [(*self.stack_key(sid), *self.stack_counters(sid))
                for sid in range(self.n_stacks)]

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
    reserved_bytes = property(lambda self: self._sum("reserved_bytes"))
    reserved_mappings = property(lambda self: self._sum("reserved_mappings"))
    total_reserved_bytes = property(lambda self: self._sum("total_reserved_bytes"))
    total_reservations = property(lambda self: self._sum("total_reservations"))
    # the sum of each process's own most: a bound (they need not reach it at once)
    reserved_peak_bytes = property(lambda self: self._sum("reserved_peak_bytes"))

    @property
    def truncated(self) -> bool:
        return any(r.truncated for r in self.readers)

    @property
    def allocator_stats(self) -> dict:
        out: dict[int, tuple[int, int]] = {}
        for r in self.readers:
            for code, (count, size) in r.allocator_stats.items():
                have = out.get(code, (0, 0))
                out[code] = (have[0] + count, have[1] + size)
        return out

    @property
    def size_histogram(self) -> list:
        out: dict[int, int] = {}
        for r in self.readers:
            for low, count in r.size_histogram:
                out[low] = out.get(low, 0) + count
        return sorted(out.items())

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

    @property
    def history(self) -> list[tuple[int, int, int]]:
        key = tuple(len(r.history) for r in self.readers)
        if key != self._history_key:
            self._history_key, self._history = key, self._merged_history()
        return self._history

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

    @property
    def peak_by_us(self) -> int:
        """The sum's peak is taken at a sample: that instant."""
        return self.peak_time_us


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
    merged = MergedReader(readers, paths, temporary_threshold)
    merged.skipped = skipped
    merged.being_written = sum(1 for p, r in zip(paths, readers, strict=True)
                               if not r.complete and _being_written(p))
    names = MergedNames([read_names(p) if (r.header or {}).get("native") else None
                         for p, r in zip(paths, readers, strict=True)])
    return merged, (names if len(names) or names.warning else None)


def _being_written(path: str) -> bool:
    """A process still writes this capture (it holds the writer's lock)."""
    import os

    from memtrace_core.capture import writer_alive

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return writer_alive(fd)
    finally:
        os.close(fd)


class ProcessesFollower:
    """`view --follow --all-processes`: the program's capture and its children's as they are
    written, children picked up as they appear. Reads give (path, bytes) pieces for
    MergedReader.feed (the feed thread hands them over as it would a stream's bytes)."""

    DISCOVER_S = 0.5  # how often to look for new children's captures

    def __init__(self, path: str) -> None:
        from memtrace_core.reader.follow import CaptureFollower

        self.path = path
        self.followers = {path: CaptureFollower(path)}
        self._looked = 0.0

    def _discover(self) -> None:
        import time

        from memtrace_core.errors import UserError
        from memtrace_core.reader.follow import CaptureFollower
        from memtrace_core.tracer.children import child_captures

        now = time.monotonic()
        if now - self._looked < self.DISCOVER_S:
            return
        self._looked = now
        for child in child_captures(self.path):
            if child not in self.followers:
                try:
                    self.followers[child] = CaptureFollower(child, wait_s=0.0)
                except UserError:  # not even its magic yet (or never: looked at again)
                    continue

    def read(self) -> list[tuple[str, bytes]]:
        self._discover()
        pieces = [(path, f.read()) for path, f in list(self.followers.items())]
        return [(path, data) for path, data in pieces if data]

    @property
    def frame_ended(self) -> bool:
        return all(f.frame_ended for f in self.followers.values())

    def writer_alive(self) -> bool:
        return any(f.writer_alive() for f in self.followers.values())

    def close(self) -> None:
        for f in self.followers.values():
            f.close()
