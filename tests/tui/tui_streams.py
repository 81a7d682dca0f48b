"""Writes FORMAT.md v1 streams with msgpack, for deterministic capture files in TUI tests."""

from __future__ import annotations

import msgpack

MAGIC = b"MEMTRACE"


class StreamWriter:
    """Builds a stream record by record; Python stacks are given outermost first."""

    def __init__(self, pid: int = 4242, argv: tuple[str, ...] = ("app.py",),
                 native: bool = False, start_time: float = 1_700_000_000.0) -> None:
        self.out = bytearray(MAGIC)
        self._codes: dict[tuple[str, str], int] = {}
        self._pynodes: dict[tuple[int, int, int], int] = {}
        self._nativenodes: dict[tuple[int, int], int] = {}
        self.start_time = start_time
        self.record(0, {"format": 1, "pid": pid, "argv": list(argv), "python": "3.11.7",
                        "native": native, "python_allocators": False,
                        "start_time": start_time, "attached": False,
                        "executable": "/usr/bin/python3"})

    def record(self, *fields) -> None:
        self.out += msgpack.packb(list(fields), use_bin_type=True)

    def thread(self, index: int, tid: int, name: str) -> None:
        self.record(6, index, tid, name)

    def maps(self, entries: list) -> None:
        self.record(7, entries)

    def pystack(self, stack: list[tuple[str, str, int]]) -> int:
        parent = 0
        for name, filename, line in stack:
            code = self._codes.get((name, filename))
            if code is None:
                code = self._codes[(name, filename)] = len(self._codes) + 1
                self.record(1, code, name, filename, 1)
            key = (parent, code, line)
            node = self._pynodes.get(key)
            if node is None:
                node = self._pynodes[key] = len(self._pynodes) + 1
                self.record(2, node, parent, code, line, True)
            parent = node
        return parent

    def native(self, ips_outermost_first: list[int]) -> int:
        parent = 0
        for ip in ips_outermost_first:
            node = self._nativenodes.get((parent, ip))
            if node is None:
                node = self._nativenodes[(parent, ip)] = len(self._nativenodes) + 1
                self.record(3, node, parent, ip)
            parent = node
        return parent

    def alloc(self, address: int, size: int, stack: list[tuple[str, str, int]],
              thread: int = 1, allocator: int = 1, native: list[int] | None = None) -> None:
        py = self.pystack(stack)
        nat = self.native(native) if native else 0
        self.record(4, thread, allocator, self._delta(address), size, py, nat)

    def _delta(self, address: int) -> int:
        """Addresses travel as signed deltas from the previous ALLOC/FREE (FORMAT.md)."""
        last = getattr(self, "_last_addr", 0)
        self._last_addr = address
        return address - last

    def free(self, address: int, thread: int = 1) -> None:
        self.record(5, thread, 10, self._delta(address), 0)

    def tick(self, t_us: int, rss: int = 0) -> None:
        self.record(8, t_us, rss)

    def trailer(self, end_offset_s: float, exit_code: int | None = 0) -> None:
        self.record(9, self.start_time + end_offset_s, exit_code)

    def save(self, path) -> None:
        with open(path, "wb") as fh:
            fh.write(bytes(self.out))
