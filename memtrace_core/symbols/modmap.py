"""Instruction pointer -> (module, build-id, file vaddr) from MAPS records, with history.

Light on purpose (bisect only): `memtrace stats` and the model import it early.
"""

from __future__ import annotations

import bisect


class ModuleMap:
    """The PT_LOAD segments of every loaded object, sorted for bisect lookups.

    `maps` is a MAPS record (docs/FORMAT.md): [[path, load_base, build_id,
    [[p_vaddr, p_memsz, p_flags, p_offset], ...]], ...]; load_base is the load bias,
    so a segment spans [load_base + p_vaddr, load_base + p_vaddr + p_memsz).
    """

    def __init__(self, maps: list):
        spans = []
        for obj in maps:
            try:
                path, base, build_id, segments = obj
                for seg in segments:
                    vaddr, memsz = seg[0], seg[1]
                    if memsz > 0:
                        spans.append((base + vaddr, base + vaddr + memsz, path, build_id, base))
            except (TypeError, ValueError, IndexError):
                continue  # a malformed entry names nothing
        spans.sort(key=lambda s: s[0])
        self._starts = [s[0] for s in spans]
        self._spans = spans

    @classmethod
    def from_history(cls, history: list[list]) -> HistoryMap:
        """A map over every MAPS snapshot (objects dlclose'd before the end still resolve
        for the stacks recorded while they were loaded)."""
        out = HistoryMap()
        out.update(history)
        return out

    def __len__(self) -> int:
        return len(self._spans)

    def lookup(self, ip: int) -> tuple[str, str | None, int] | None:
        """(path, build_id, vaddr = ip - load_base) of the segment holding ip, or None."""
        i = bisect.bisect_right(self._starts, ip) - 1
        if i < 0:
            return None
        start, end, path, build_id, base = self._spans[i]
        if ip >= end:
            return None
        return path, build_id, ip - base


def _identity(obj) -> tuple | None:
    try:
        path, base, build_id, _segments = obj
        return (path, base, build_id)
    except (TypeError, ValueError):
        return None


class HistoryMap:
    """Every MAPS snapshot of a stream: the latest one first, then, newest first, the
    objects of older snapshots that are gone from the latest (unloaded since). An address
    reused by a later object resolves to the later one. `update` takes the reader's
    growing `maps_history` and costs nothing when it did not grow."""

    def __init__(self) -> None:
        self.layers: list[ModuleMap] = []
        self._seen = 0

    def update(self, history: list[list]) -> None:
        if len(history) == self._seen:
            return
        self._seen = len(history)
        if not history:
            self.layers = []
            return
        latest = history[-1]
        present = {_identity(o) for o in latest}
        layers = [ModuleMap(latest)]
        for snapshot in reversed(history[:-1]):
            gone = [o for o in snapshot if _identity(o) not in present]
            if gone:
                layers.append(ModuleMap(gone))
                present.update(_identity(o) for o in gone)
        self.layers = layers

    def lookup(self, ip: int) -> tuple[str, str | None, int] | None:
        for layer in self.layers:
            hit = layer.lookup(ip)
            if hit is not None:
                return hit
        return None
