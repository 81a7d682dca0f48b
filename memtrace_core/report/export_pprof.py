"""pprof's profile.proto, gzip-compressed, for `go tool pprof` and Pyroscope.

Two sample types: objects (count) and space (bytes), named like Go's heap profiles
(alloc_*, inuse_* for --leaks, peak_* for --peak). A native frame and the frames inlined
into it form one Location whose Lines run innermost first, as profile.proto specifies;
each library is a Mapping (path and build-id). Locations carry no addresses: every frame
is already symbolized.
"""

from __future__ import annotations

import gzip
import os
import time

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.report.profile import Profile, Selection
from memtrace_core.report.protobuf_wire import bytes_field, packed_field, uint_field

# profile.proto's field numbers, by message (github.com/google/pprof, proto/profile.proto)
P_SAMPLE_TYPE, P_SAMPLE, P_MAPPING, P_LOCATION, P_FUNCTION, P_STRINGS = 1, 2, 3, 4, 5, 6
P_TIME_NANOS, P_DURATION_NANOS, P_DEFAULT_SAMPLE_TYPE = 9, 10, 14


class ValueTypeField:
    TYPE, UNIT = 1, 2


class SampleField:
    LOCATION_ID, VALUE = 1, 2


class MappingField:
    ID, FILENAME, BUILD_ID = 1, 5, 6
    HAS_FUNCTIONS, HAS_FILENAMES, HAS_LINE_NUMBERS, HAS_INLINE_FRAMES = 7, 8, 9, 10


class LocationField:
    ID, MAPPING_ID, LINE = 1, 2, 4


class LineField:
    FUNCTION_ID, LINE = 1, 2


class FunctionField:
    ID, NAME, SYSTEM_NAME, FILENAME = 1, 2, 3, 4

_PREFIX = {Selection.ALL: "alloc", Selection.LEAKS: "inuse", Selection.PEAK: "peak"}


class _Strings:
    """profile.proto's string table: index 0 is the empty string."""

    def __init__(self) -> None:
        self.table: list[str] = [""]
        self._index: dict[str, int] = {"": 0}

    def __call__(self, s: str) -> int:
        i = self._index.get(s)
        if i is None:
            i = self._index[s] = len(self.table)
            self.table.append(s)
        return i


def display_name(frame: Frame) -> str:
    """pprof drops `<...>` as C++ template arguments: `<module>` of prog.py reads
    `prog.py:module` instead (the system name keeps the original)."""
    name = frame.function
    if frame.kind is FrameKind.PYTHON and name.startswith("<") and name.endswith(">"):
        return f"{os.path.basename(frame.file)}:{name[1:-1]}"
    return name


def group_locations(path: tuple[Frame, ...]) -> list[tuple[Frame, ...]]:
    """Outermost-first frames -> outermost-first locations: each native frame with the
    inlined frames that follow it, innermost first inside the group."""
    groups: list[list[Frame]] = []
    for frame in path:
        if frame.kind is FrameKind.INLINE and groups and groups[-1][0].kind in (
                FrameKind.NATIVE, FrameKind.INLINE):
            groups[-1].insert(0, frame)
        else:
            groups.append([frame])
    return [tuple(g) for g in groups]


def encode(profile: Profile) -> bytes:
    """The profile message, uncompressed."""
    s = _Strings()
    functions: dict[tuple[str, str], int] = {}
    mappings: dict[str, int] = {}
    locations: dict[tuple[Frame, ...], int] = {}
    fn_msgs: list[bytes] = []
    map_msgs: list[bytes] = []
    loc_msgs: list[bytes] = []
    sample_msgs: list[bytes] = []
    build_ids = _build_ids(profile)

    def function_id(frame: Frame) -> int:
        fkey = (frame.function, frame.file)
        fid = functions.get(fkey)
        if fid is None:
            fid = functions[fkey] = len(functions) + 1
            fn_msgs.append(uint_field(FunctionField.ID, fid)
                           + uint_field(FunctionField.NAME, s(display_name(frame)))
                           + uint_field(FunctionField.SYSTEM_NAME, s(frame.function))
                           + uint_field(FunctionField.FILENAME, s(frame.file)))
        return fid

    def mapping_id(module: str) -> int:
        mid = mappings.get(module)
        if mid is None:
            mid = mappings[module] = len(mappings) + 1
            map_msgs.append(uint_field(MappingField.ID, mid)
                            + uint_field(MappingField.FILENAME, s(module))
                            + uint_field(MappingField.BUILD_ID, s(build_ids.get(module) or ""))
                            + uint_field(MappingField.HAS_FUNCTIONS, 1)
                            + uint_field(MappingField.HAS_FILENAMES, 1)
                            + uint_field(MappingField.HAS_LINE_NUMBERS, 1)
                            + uint_field(MappingField.HAS_INLINE_FRAMES, 1))
        return mid

    def location_id(group: tuple[Frame, ...]) -> int:
        lid = locations.get(group)
        if lid is None:
            lid = locations[group] = len(locations) + 1
            msg = uint_field(LocationField.ID, lid)
            module = group[-1].module
            if module:
                msg += uint_field(LocationField.MAPPING_ID, mapping_id(module))
            for frame in group:  # innermost first; the last is the caller
                msg += bytes_field(LocationField.LINE,
                                   uint_field(LineField.FUNCTION_ID, function_id(frame))
                                   + uint_field(LineField.LINE, frame.line))
            loc_msgs.append(msg)
        return lid

    header = profile.reader.header or {}
    if header.get("executable"):  # pprof takes the first mapping as the main binary
        mapping_id(header["executable"])
    for path, nbytes, ncount in profile.stacks():
        ids = [location_id(g) for g in reversed(group_locations(path))]  # leaf first
        sample_msgs.append(packed_field(SampleField.LOCATION_ID, ids)
                           + packed_field(SampleField.VALUE, [ncount, nbytes]))

    prefix = _PREFIX[profile.selection]
    out = bytearray()
    for name, unit in ((f"{prefix}_objects", "count"), (f"{prefix}_space", "bytes")):
        out += bytes_field(P_SAMPLE_TYPE, uint_field(ValueTypeField.TYPE, s(name))
                           + uint_field(ValueTypeField.UNIT, s(unit)))
    for msg in sample_msgs:
        out += bytes_field(P_SAMPLE, msg)
    for msg in map_msgs:
        out += bytes_field(P_MAPPING, msg)
    for msg in loc_msgs:
        out += bytes_field(P_LOCATION, msg)
    for msg in fn_msgs:
        out += bytes_field(P_FUNCTION, msg)
    for text in s.table:
        out += bytes_field(P_STRINGS, text.encode("utf-8", "surrogateescape"))
    start = float(header.get("start_time") or time.time())
    out += uint_field(P_TIME_NANOS, int(start * 1e9))
    out += uint_field(P_DURATION_NANOS, int(getattr(profile.reader, "last_time_us", 0)) * 1000)
    out += uint_field(P_DEFAULT_SAMPLE_TYPE, s(f"{prefix}_space"))
    return bytes(out)


def render(profile: Profile) -> bytes:
    """The gzip-compressed profile, as pprof files are stored."""
    return gzip.compress(encode(profile), mtime=0)


def _build_ids(profile: Profile) -> dict[str, str]:
    out: dict[str, str] = {}
    for snapshot in getattr(profile.reader, "maps_history", None) or []:
        for entry in snapshot:
            if entry[2]:
                out[entry[0]] = entry[2]
    return out
