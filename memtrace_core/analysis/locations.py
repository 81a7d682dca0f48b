"""Allocation locations: per-stack counters of the reader summed by innermost frame.

A Python location is the innermost Python frame (function, file, line) of an allocation;
allocations with no Python frame go to ("<native>", "", 0). A native location is the
innermost native frame as (module path, offset = ip - load_base) from the MAPS records; a
symbolizer can name it later through the `resolve` hook of `native_locations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NATIVE_FUNCTION = "<native>"


@dataclass(slots=True)
class LocationStats:
    """Totals of the allocations made at one location."""

    bytes: int = 0  # allocated in total
    count: int = 0
    leaked_bytes: int = 0  # still in use at the end (or now, for a live stream)
    leaked_count: int = 0
    peak_bytes: int = 0  # in use at the moment of the global peak
    peak_count: int = 0

    def add(self, c: tuple[int, ...]) -> None:
        """Add a reader stack row's counters (alloc, live, peak: bytes and count each)."""
        self.bytes += c[0]
        self.count += c[1]
        self.leaked_bytes += c[2]
        self.leaked_count += c[3]
        self.peak_bytes += c[4]
        self.peak_count += c[5]


@dataclass(frozen=True, slots=True)
class PythonLocation:
    function: str
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class NativeLocation:
    module: str  # "" when the ip is in no mapped object
    offset: int  # ip - load_base (the ip itself when the module is unknown)
    build_id: str | None = None


def python_locations(reader: Any) -> dict[PythonLocation, LocationStats]:
    """Sum every stack by its innermost Python frame."""
    by_node: dict[int, LocationStats] = {}
    for row in reader.stacks():
        if not row[4]:
            continue  # no allocation: a stack where address space was only reserved
        stats = by_node.get(row[0])
        if stats is None:
            stats = by_node[row[0]] = LocationStats()
        stats.add(row[3:])
    out: dict[PythonLocation, LocationStats] = {}
    for node, stats in by_node.items():
        _merge(out, python_location(reader, node), stats)
    return out


def python_location(reader: Any, pynode: int) -> PythonLocation:
    """The innermost Python frame of a Python stack node (<native> for none)."""
    frame = reader.py_frame(pynode)
    if frame is None:
        return PythonLocation(NATIVE_FUNCTION, "", 0)
    code_id, line, _entry = frame
    name, filename, _first = reader.codes.get(code_id, (f"<code {code_id}>", "", 0))
    return PythonLocation(name, filename, line)


def reserved_locations(reader: Any) -> dict[PythonLocation, tuple[int, int]]:
    """(bytes, mappings) of address space reserved and still mapped, by innermost Python
    frame: reservations (MMAP_RESERVE: docs/FORMAT.md) are not heap, so they are in
    no LocationStats."""
    out: dict[PythonLocation, tuple[int, int]] = {}
    for sid, size, mappings in reader.reserved_stacks():
        loc = python_location(reader, reader.stack_key(sid)[0])
        have = out.get(loc, (0, 0))
        out[loc] = (have[0] + size, have[1] + mappings)
    return out


def native_locations(reader: Any) -> dict[NativeLocation, LocationStats]:
    """Sum every native stack by its innermost native frame (the caller names them).

    Allocations without a native stack are left out.
    """
    by_node: dict[int, LocationStats] = {}
    for row in reader.stacks():
        if row[1] == 0 or not row[4]:
            continue
        stats = by_node.get(row[1])
        if stats is None:
            stats = by_node[row[1]] = LocationStats()
        stats.add(row[3:])
    # Latest snapshot first: a library unloaded since is still found in an older one.
    # (the modmap module alone loads neither pyelftools nor msgpack: stats stays light)
    # Several processes read as one (model.processes) look each address up in its own.
    lookup = getattr(reader, "module_lookup", None)
    if lookup is None:
        from memtrace_core.symbols.modmap import ModuleMap

        lookup = ModuleMap.from_history(reader.maps_history).lookup
    out: dict[NativeLocation, LocationStats] = {}
    for node, stats in by_node.items():
        ip = reader.native_stack(node)[0]
        hit = lookup(ip)
        loc = NativeLocation("", ip) if hit is None else NativeLocation(hit[0], hit[2], hit[1])
        _merge(out, loc, stats)
    return out


def _merge(out: dict, loc: Any, stats: LocationStats) -> None:
    have = out.get(loc)
    if have is None:
        out[loc] = stats
    else:
        have.add((stats.bytes, stats.count, stats.leaked_bytes, stats.leaked_count,
                  stats.peak_bytes, stats.peak_count))


def top(
    locations: dict[Any, LocationStats], key: str = "bytes", limit: int | None = None
) -> list[tuple[Any, LocationStats]]:
    """Locations sorted by one LocationStats field, largest first (ties: by location)."""
    items = sorted(locations.items(), key=lambda kv: (-getattr(kv[1], key), repr(kv[0])))
    return items if limit is None else items[:limit]
