"""`memtrace diff`: what changed in memory in use between two captures of one program, or
between two instants of one capture: per location (the frame that made the allocation, as
`table` counts "own"), or per call path.

Both sides are ordinary Profiles (the one naming-and-tree pipeline of every report), so
frames are named and marked as everywhere else and matched by their full identity
(function, file, line, kind, library). Sides are read for "in use": at the end of a
capture, at an instant (the capture replayed up to its first TICK at or after it), or at
the peak (the allocations in use at the high-water mark).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from memtrace_core.errors import UserError
from memtrace_core.frames import Frame
from memtrace_core.report.kinds import frame_json
from memtrace_core.report.profile import Profile

_TIME = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|ms|s|m|min|h)?\s*$", re.IGNORECASE)
_TIME_UNITS = {"us": 1, "ms": 1000, "s": 1_000_000, "": 1_000_000, "m": 60_000_000,
               "min": 60_000_000, "h": 3_600_000_000}
INSTANT_WORDS = ("start", "peak", "end")


def parse_instant(text: str, option: str) -> int | str:
    """`12.5` / `12.5s` / `800ms` / `2m` since the start (microseconds), or start/peak/end."""
    word = text.strip().lower()
    if word in INSTANT_WORDS:
        return word
    m = _TIME.match(word)
    if m is None or not math.isfinite(float(m.group(1))):
        raise UserError(f"bad {option} {text!r}: use a time since the start (12.5, 800ms, "
                        f"2m) or one of {', '.join(INSTANT_WORDS)}")
    return int(round(float(m.group(1)) * _TIME_UNITS[(m.group(2) or "").lower()]))


def describe_instant(instant: int | str, profile: Profile | None = None) -> str:
    """`at 2.500 s`, `at the peak (1.204 s)`, `at the end`, `at the start`."""
    if instant == "peak" and profile is not None:
        return f"at the peak ({profile.reader.peak_time_us / 1e6:.3f} s)"
    if isinstance(instant, str):
        return f"at the {instant}"
    return f"at {instant / 1e6:.3f} s"


class _Sides:
    """The change between the two sides' figures (bytes and count before and after)."""

    __slots__ = ()
    frame: Frame | None
    before_bytes: int
    before_count: int
    after_bytes: int
    after_count: int

    @property
    def delta_bytes(self) -> int:
        return self.after_bytes - self.before_bytes

    @property
    def delta_count(self) -> int:
        return self.after_count - self.before_count

    def to_json(self) -> dict:
        return {**frame_json(self.frame), "delta_bytes": self.delta_bytes,
                "delta_count": self.delta_count, "before_bytes": self.before_bytes,
                "after_bytes": self.after_bytes, "before_count": self.before_count,
                "after_count": self.after_count}


@dataclass(frozen=True, slots=True)
class Change(_Sides):
    """One location's (or call path's own) memory in use on both sides."""

    frame: Frame
    before_bytes: int
    before_count: int
    after_bytes: int
    after_count: int


def _sort_key(change) -> tuple:
    f = change.frame
    return (-change.delta_bytes, -change.delta_count, f.function, f.file, f.line)


def _own(profile: Profile | None) -> dict[Frame, tuple[int, int]]:
    if profile is None:  # the start: nothing in use yet
        return {}
    return {loc.frame: (loc.own_bytes, loc.own_count) for loc in profile.locations()
            if loc.own_bytes or loc.own_count}


def location_changes(before: Profile | None, after: Profile | None,
                     unchanged: bool = False) -> list[Change]:
    """Every location whose memory in use differs (all of them with unchanged=True),
    largest growth first, shrinking ones last."""
    old, new = _own(before), _own(after)
    out = []
    for frame in old.keys() | new.keys():
        b, a = old.get(frame, (0, 0)), new.get(frame, (0, 0))
        if unchanged or a != b:
            out.append(Change(frame, b[0], b[1], a[0], a[1]))
    out.sort(key=_sort_key)
    return out


@dataclass
class PathNode(_Sides):
    """A call-path node of the diff: figures through it (itself and below) on both sides."""

    frame: Frame | None
    before_bytes: int = 0
    before_count: int = 0
    after_bytes: int = 0
    after_count: int = 0
    changed: bool = False  # a path ending at or below it changed
    children: dict[Frame, PathNode] = field(default_factory=dict)

    def ordered(self, unchanged: bool = False) -> list[PathNode]:
        kids = [k for k in self.children.values() if unchanged or k.changed]
        kids.sort(key=_sort_key)
        return kids


def path_changes(before: Profile | None, after: Profile | None) -> PathNode:
    """The call paths of both sides merged into one tree, each node with both sides' bytes
    and counts through it; `changed` marks the nodes above a path whose own figures differ."""
    root = PathNode(None)
    own: dict[tuple[Frame, ...], list[int]] = {}
    for side, profile in ((0, before), (2, after)):
        if profile is None:
            continue
        for frames, nbytes, count in profile.stacks():
            figures = own.setdefault(frames, [0, 0, 0, 0])
            figures[side] += nbytes
            figures[side + 1] += count
    for frames, (bb, bc, ab, ac) in own.items():
        changed = (bb, bc) != (ab, ac)
        node = root
        for nodes_frame in (None, *frames):
            if nodes_frame is not None:
                node = node.children.setdefault(nodes_frame, PathNode(nodes_frame))
            node.before_bytes += bb
            node.before_count += bc
            node.after_bytes += ab
            node.after_count += ac
            node.changed = node.changed or changed
    return root


def signed_count(n: int) -> str:
    return f"{n:+,}" if n else "±0"


def table_json(changes: list[Change], limit: int = 0) -> list[dict]:
    return [c.to_json() for c in (changes[:limit] if limit > 0 else changes)]


def tree_json(root: PathNode, unchanged: bool = False) -> list[dict]:
    """Nested objects, children largest growth first; built without recursion."""
    out: list[dict] = []
    todo = [(root, out)]
    while todo:
        node, into = todo.pop()
        for kid in node.ordered(unchanged):
            item = {**kid.to_json(), "children": []}
            into.append(item)
            todo.append((kid, item["children"]))
    return out


def _program(header: dict) -> str:
    """The program a capture ran: the script's name, `-m module` or `-c`, or the argv[0]
    of an attached process."""
    argv = list(header.get("argv") or [])
    if header.get("attached") or len(argv) < 2:
        return " ".join(argv[:1]) or "?"
    if argv[1] == "-m" and len(argv) > 2:
        return f"-m {argv[2]}"
    if argv[1] == "-c":
        return "-c"
    return argv[1].rsplit("/", 1)[-1]


def program_warnings(a: dict, b: dict) -> list[str]:
    """One line per way the two captures' programs differ (headers), none when alike."""
    out = []
    if _program(a) != _program(b):
        out.append(f"the captures are of different programs ({_program(a)} and "
                   f"{_program(b)}): locations are matched by function, file and line")
    if a.get("python") != b.get("python"):
        out.append(f"the captures ran on different Pythons ({a.get('python')} and "
                   f"{b.get('python')}): CPython's own allocations may differ")
    if bool(a.get("native")) != bool(b.get("native")):
        out.append("one capture has native frames and the other not: their locations "
                   "differ (record both with or without --native)")
    return out
