"""A pure-Python stand-in for StreamReader (READER_API.md) driven by direct calls.

Model tests use it to state exact scenarios without the wire format: every counter it
reports is computed here from the calls, so expected numbers are known by construction.
"""

from __future__ import annotations


class FakeReader:
    def __init__(self, pid: int = 4242, argv: tuple[str, ...] = ("app.py",)) -> None:
        self.header = {"format": 1, "pid": pid, "argv": list(argv), "native": False,
                       "start_time": 1_700_000_000.0, "python": "3.11.7"}
        self.trailer = None
        self.complete = False
        self.truncated = False
        self.records = 0
        self.codes: dict[int, tuple[str, str, int]] = {}
        self.threads: dict[int, tuple[int, str]] = {1: (100, "MainThread")}
        self.maps: list = []
        self.history: list[tuple[int, int, int]] = []
        self.total_allocated_bytes = self.total_allocations = self.total_frees = 0
        self.heap_bytes = self.heap_allocations = 0
        self.peak_bytes = self.peak_allocations = self.peak_time_us = 0
        self.last_time_us = 0
        self._code_ids: dict[tuple[str, str], int] = {}
        self._pynodes: dict[tuple[int, int, int], int] = {}  # (parent, code, line) -> id
        self._pynode_info: dict[int, tuple[int, int, int]] = {}  # id -> (parent, code, line)
        self._stacks: dict[tuple[int, int, int], int] = {}
        self._keys: list[tuple[int, int, int]] = []
        self._counters: list[list[int]] = []
        self._live: dict[int, tuple[int, int]] = {}  # address -> (size, sid)
        self._changed: set[int] = set()

    # -- building ----------------------------------------------------------------------
    def pynode(self, stack: list[tuple[str, str, int]]) -> int:
        parent = 0
        for name, filename, line in stack:
            code = self._code_ids.get((name, filename))
            if code is None:
                code = self._code_ids[(name, filename)] = len(self._code_ids) + 1
                self.codes[code] = (name, filename, 1)
            key = (parent, code, line)
            node = self._pynodes.get(key)
            if node is None:
                node = self._pynodes[key] = len(self._pynodes) + 1
                self._pynode_info[node] = key
            parent = node
        return parent

    def alloc(self, address: int, size: int, stack: list[tuple[str, str, int]],
              thread: int = 1) -> int:
        key = (self.pynode(stack), 0, thread)
        sid = self._stacks.get(key)
        if sid is None:
            sid = self._stacks[key] = len(self._keys)
            self._keys.append(key)
            self._counters.append([0] * 6)
        c = self._counters[sid]
        c[0] += size
        c[1] += 1
        c[2] += size
        c[3] += 1
        self._live[address] = (size, sid)
        self.total_allocated_bytes += size
        self.total_allocations += 1
        self.heap_bytes += size
        self.heap_allocations += 1
        self.records += 1
        self._changed.add(sid)
        if self.heap_bytes > self.peak_bytes:
            self.peak_bytes = self.heap_bytes
            self.peak_allocations = self.heap_allocations
            self.peak_time_us = self.last_time_us
            for s, cs in enumerate(self._counters):
                if (cs[4], cs[5]) != (cs[2], cs[3]):
                    cs[4], cs[5] = cs[2], cs[3]
                    self._changed.add(s)
        return sid

    def free(self, address: int) -> None:
        self.records += 1
        entry = self._live.pop(address, None)
        if entry is None:
            return
        size, sid = entry
        c = self._counters[sid]
        c[2] -= size
        c[3] -= 1
        self.heap_bytes -= size
        self.heap_allocations -= 1
        self.total_frees += 1
        self._changed.add(sid)

    def tick(self, t_us: int, rss: int = 0) -> None:
        self.last_time_us = t_us
        self.records += 1
        self.history.append((t_us, self.heap_bytes, rss))

    # -- the API -----------------------------------------------------------------------
    def py_stack(self, pynode: int) -> list[tuple[int, int, bool]]:
        out = []
        while pynode:
            parent, code, line = self._pynode_info[pynode]
            out.append((code, line, False))
            pynode = parent
        return out

    def native_stack(self, nativenode: int) -> list[int]:
        return []

    @property
    def n_stacks(self) -> int:
        return len(self._keys)

    def stack_key(self, sid: int) -> tuple[int, int, int]:
        return self._keys[sid]

    def stack_counters(self, sid: int) -> tuple[int, ...]:
        return tuple(self._counters[sid])

    def take_changed(self) -> list[int]:
        out = sorted(self._changed)
        self._changed.clear()
        return out
