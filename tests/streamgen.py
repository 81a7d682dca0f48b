"""Write memtrace streams (docs/FORMAT.md) from Python with the msgpack library, for tests.

An independent encoder: the reader is hand-written C, this uses msgpack-python, so a test
that round-trips through both checks the reader against the format, not against itself.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgpack

MAGIC = b"MEMTRACE"

HEADER, CODE, PYNODE, NATIVENODE, ALLOC, FREE, THREAD, MAPS, TICK, TRAILER = range(10)
ALLOC_SAME, FREE_SAME = 10, 11  # format 2; this generator writes format 1 (full records)
MAPS_DELTA = 12  # format 3 (a header with format=3 to write it)
PYNODE_NEXT, NATIVENODE_NEXT = 13, 14  # format 6
ALLOC_AGAIN = 15  # format 7, sampled captures
EVENTS = 16  # format 9, exact captures: ALLOC_SAME/FREE_SAME items packed in a bin

MALLOC, CALLOC, REALLOC, POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN, VALLOC, PVALLOC = range(1, 9)
MMAP, FREE_FN, MUNMAP, REALLOCARRAY = 9, 10, 11, 12
MMAP_RESERVE = 21
PYMALLOC_MALLOC, PYMALLOC_CALLOC, PYMALLOC_REALLOC, PYMALLOC_FREE = 13, 14, 15, 16

START_TIME = 1_700_000_000.0


def events_number(value: int) -> bytes:
    """One number of an EVENTS item (docs/FORMAT.md): its length in the first byte's
    trailing zero bits, 7 bits a byte, little-endian; a 0 byte then 8 beyond 56 bits."""
    for length in range(1, 9):
        if value < 1 << (7 * length):
            return ((value << length) | (1 << (length - 1))).to_bytes(length, "little")
    return b"\0" + value.to_bytes(8, "little")


def events_payload(items: list[tuple[int, int | None]]) -> bytes:
    """An EVENTS bin of (address delta, size) items: size None for a FREE_SAME."""
    out = b""
    for delta, size in items:
        zigzag = ((delta << 1) ^ (delta >> 63)) & ((1 << 64) - 1)
        out += events_number(zigzag << 1 | (size is not None))
        if size is not None:
            out += events_number(size)
    return out


def events_items(payload: bytes) -> list[tuple[int, int | None]]:
    """The (address delta, size or None) items of an EVENTS bin, as events_payload takes."""
    items: list[tuple[int, int | None]] = []
    pos = 0

    def number() -> int:
        nonlocal pos
        if pos >= len(payload):
            raise ValueError("EVENTS item cut short")
        first = payload[pos]
        length = (first & -first).bit_length() if first else 9
        if pos + length > len(payload):
            raise ValueError("EVENTS item cut short")
        if first == 0:
            value = int.from_bytes(payload[pos + 1 : pos + 9], "little")
        else:
            value = int.from_bytes(payload[pos : pos + length], "little") >> length
        pos += length
        return value

    while pos < len(payload):
        v = number()
        zigzag = v >> 1
        delta = (zigzag >> 1) ^ -(zigzag & 1)
        items.append((delta, number() if v & 1 else None))
    return items


class StreamWriter:
    """Accumulates records; `data` is the stream so far (magic + records)."""

    def __init__(self, *, header: bool = True, **header_fields: Any) -> None:
        self.chunks: list[bytes] = [MAGIC]
        self.record_ends: list[int] = []  # byte offset just after each record
        self._size = len(MAGIC)
        self._codes: dict[tuple[str, str, int], int] = {}
        self._pynodes: dict[tuple[int, int, int, bool], int] = {}
        self._natnodes: dict[tuple[int, int], int] = {}
        if header:
            self.header(**header_fields)

    def record(self, *fields: Any) -> None:
        """Append one record [type, *fields]."""
        chunk = msgpack.packb(list(fields), use_bin_type=True)
        self.chunks.append(chunk)
        self._size += len(chunk)
        self.record_ends.append(self._size)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    def write(self, path: str | Path) -> Path:
        Path(path).write_bytes(self.data)
        return Path(path)

    # ---- one method per record type ----

    def header(self, **fields: Any) -> None:
        h = {
            "format": 1,
            "pid": 4242,
            "argv": ["prog.py", "--flag"],
            "python": "3.11.7",
            "native": False,
            "python_allocators": False,
            "start_time": START_TIME,
            "attached": False,
            "executable": "/usr/bin/python3",
        }
        h.update(fields)
        self.record(HEADER, h)

    def code(self, code_id: int, name: str, filename: str, firstlineno: int) -> None:
        self.record(CODE, code_id, name, filename, firstlineno)

    def pynode(self, node_id: int, parent: int, code_id: int, line: int, entry: bool = False):
        self.record(PYNODE, node_id, parent, code_id, line, entry)

    def nativenode(self, node_id: int, parent: int, ip: int) -> None:
        self.record(NATIVENODE, node_id, parent, ip)

    def _delta(self, address: int) -> int:
        """Addresses travel as signed deltas from the previous ALLOC/FREE (mod 2**64)."""
        last = getattr(self, "_last_addr", 0)
        self._last_addr = address % (1 << 64)
        return (address - last + (1 << 63)) % (1 << 64) - (1 << 63)

    def events(self, blocks: list[tuple[int, int | None]]) -> None:
        """One EVENTS record (format 9) of (address, size) items, size None for a FREE_SAME:
        each in the context of the previous ALLOC or FREE."""
        payload = events_payload([(self._delta(address), size) for address, size in blocks])
        self.record(EVENTS, payload)

    def alloc(self, thread: int, allocator: int, address: int, size: int, pynode: int = 0,
              nativenode: int = 0) -> None:
        self.record(ALLOC, thread, allocator, self._delta(address), size, pynode, nativenode)

    def free(self, thread: int, allocator: int, address: int, size: int = 0) -> None:
        self.record(FREE, thread, allocator, self._delta(address), size)

    def thread(self, thread: int, os_tid: int, name: str) -> None:
        self.record(THREAD, thread, os_tid, name)

    def maps(self, objects: list) -> None:
        self.record(MAPS, objects)

    def maps_delta(self, removed: list[int], added: list) -> None:
        """Format 3: the load bases of the objects gone, then the objects loaded."""
        self.record(MAPS_DELTA, removed, added)

    def tick(self, t_us: int, rss: int = 0) -> None:
        self.record(TICK, t_us, rss)

    def trailer(self, end_time: float = START_TIME + 2.5, exit_code: int | None = 0) -> None:
        self.record(TRAILER, end_time, exit_code)

    # ---- helpers that intern stacks like the tracer ----

    def py_stack(self, frames: list[tuple[str, str, int]], entry: bool = True) -> int:
        """Intern a Python stack given outermost first as (function, file, line); returns the
        innermost node id (0 for an empty stack). Every frame is an entry frame by default."""
        node = 0
        for function, filename, line in frames:
            key = (function, filename, 1)
            code_id = self._codes.get(key)
            if code_id is None:
                code_id = self._codes[key] = len(self._codes) + 1
                self.code(code_id, function, filename, 1)
            nkey = (node, code_id, line, entry)
            child = self._pynodes.get(nkey)
            if child is None:
                child = self._pynodes[nkey] = len(self._pynodes) + 1
                self.pynode(child, node, code_id, line, entry)
            node = child
        return node

    def native_stack(self, ips: list[int]) -> int:
        """Intern a native stack given outermost first; returns the innermost node id."""
        node = 0
        for ip in ips:
            child = self._natnodes.get((node, ip))
            if child is None:
                child = self._natnodes[(node, ip)] = len(self._natnodes) + 1
                self.nativenode(child, node, ip)
            node = child
        return node


class ProgramStream(StreamWriter):
    """A program's stream in a few calls (the TUI tests' captures): an allocation carries its
    Python stack as frames, outermost first, interned as the tracer does, and optionally its
    native IPs; times are offsets from the start. The same records, written by StreamWriter."""

    def __init__(self, pid: int = 4242, argv: tuple[str, ...] = ("app.py",),
                 native: bool = False, start_time: float = START_TIME) -> None:
        super().__init__(pid=pid, argv=list(argv), native=native, start_time=start_time)
        self.start_time = start_time

    def alloc(self, address: int, size: int, stack: list[tuple[str, str, int]],  # type: ignore[override]
              thread: int = 1, allocator: int = MALLOC, native: list[int] | None = None) -> None:
        py = self.py_stack(stack)
        nat = self.native_stack(native) if native else 0
        super().alloc(thread, allocator, address, size, py, nat)

    def free(self, address: int, thread: int = 1) -> None:  # type: ignore[override]
        super().free(thread, FREE_FN, address, 0)

    def trailer(self, end_offset_s: float, exit_code: int | None = 0) -> None:  # type: ignore[override]
        super().trailer(self.start_time + end_offset_s, exit_code)

    def take(self) -> bytes:
        """The bytes written since the last take (the first one starts with the magic): a
        stream handed to a reader piece by piece."""
        data = self.data
        self.chunks.clear()
        return data


def sample_stream(seed: int = 1, n: int = 400, trailer: bool = True) -> StreamWriter:
    """A stream with every record type, several threads, mmaps and realloc chains."""
    rng = random.Random(seed)
    w = StreamWriter(native=True)
    w.maps([["/lib/libc.so.6", 0x7F0000000000, "00ff", [[0, 0x1000, 5, 0]]]])
    live: list[int] = []
    t = 0
    for i in range(n):
        thread = rng.randint(1, 3)
        if rng.random() < 0.02:
            w.thread(thread, 900 + thread, f"thread-{i}")
        x = rng.random()
        if x < 0.45 or not live:
            fn = f"f{rng.randint(0, 9)}"
            py = w.py_stack([("main", "s.py", 1), (fn, "s.py", rng.randint(2, 4))])
            nat = w.native_stack([0x7F0000000010, 0x7F0000000020 + rng.randint(0, 5)])
            addr = 0x5000 + 32 * i
            w.alloc(thread, MALLOC, addr, rng.randint(0, 1 << rng.randint(0, 20)), py, nat)
            live.append(addr)
        elif x < 0.75:
            w.free(thread, FREE_FN, live.pop(rng.randrange(len(live))))
        elif x < 0.85:
            old = live.pop(rng.randrange(len(live)))
            w.free(thread, REALLOC, old)
            w.alloc(thread, REALLOC, old + 8, rng.randint(1, 300), 0, 0)
            live.append(old + 8)
        elif x < 0.92:
            addr = 0x7E0000000000 + 4096 * rng.randint(0, 30)
            w.alloc(thread, MMAP, addr, 4096 * rng.randint(1, 4))
        elif x < 0.96:
            addr = 0x7E0000000000 + 1024 * rng.randint(0, 120)
            w.free(thread, MUNMAP, addr, 1024 * rng.randint(1, 9))
        else:
            t += rng.randint(1, 20000)
            w.tick(t, rng.randint(0, 1 << 30))
    if trailer:
        w.trailer()
    return w


def compress(data: bytes, flush_every: int = 4096) -> bytes:
    """A capture file as memtrace writes it (its one capture writer, memtrace_core/capture):
    "MEMTRACZ" then a zstd frame of the stream (magic included), flushed every flush_every
    input bytes."""
    import os

    from memtrace_core.capture import CaptureWriter

    fd = os.memfd_create("capture")
    try:
        writer = CaptureWriter(fd, flush_interval=3600.0)  # flushed here, never by time
        for i in range(0, len(data), flush_every):
            writer.write(data[i : i + flush_every])
            writer.flush()
        writer.finish()
        return os.pread(fd, os.fstat(fd).st_size, 0)
    finally:
        os.close(fd)
