"""What every report starts from: a capture read, its stacks turned into frames (the
model's StackFrames, i.e. the symbols layer's one hybrid merge) and summed into a
FrameTree for one selection (all allocations, leaks or the peak).

Only the stacks with something to show for the selection are turned into frames, so a
`--leaks` report of a program that freed most of its memory symbolizes only the stacks
that still hold memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.model.metrics import Metric
from memtrace_core.model.stacks import StackFrames
from memtrace_core.report.frametree import FrameTree, Node
from memtrace_core.report.pathcache import CachedPaths
from memtrace_core.strenum import StrEnum

NO_STACK = Frame("<no stack>", "", 0, FrameKind.UNRESOLVED)


class Selection(StrEnum):
    """Which allocations a report counts."""

    ALL = "all"  # every allocation made
    LEAKS = "leaks"  # still allocated at the end
    PEAK = "peak"  # allocated at the high-water mark

    @property
    def metric(self) -> Metric:
        return {"all": Metric.TOTAL, "leaks": Metric.IN_USE, "peak": Metric.PEAK}[self.value]

    @property
    def title(self) -> str:
        return {"all": "all allocations", "leaks": "still allocated at the end",
                "peak": "allocated at the peak"}[self.value]


def selection_from_args(args) -> Selection:
    if getattr(args, "leaks", False):
        return Selection.LEAKS
    if getattr(args, "peak", False):
        return Selection.PEAK
    return Selection.ALL


class SelectedStacks:
    """The reader API restricted to stacks whose counters are non-zero for a selection."""

    def __init__(self, reader, metric: Metric) -> None:
        self._reader = reader
        bi, ci = metric.bytes_index, metric.count_index
        self._sids = [sid for sid in range(reader.n_stacks)
                      if (c := reader.stack_counters(sid))[bi] or c[ci]]
        self.codes = reader.codes

    @property
    def n_stacks(self) -> int:
        return len(self._sids)

    def stack_key(self, sid: int) -> tuple[int, int, int]:
        return self._reader.stack_key(self._sids[sid])

    def stack_counters(self, sid: int) -> tuple[int, ...]:
        return self._reader.stack_counters(self._sids[sid])

    def py_stack(self, pynode: int):
        return self._reader.py_stack(pynode)

    def native_stack(self, nativenode: int):
        return self._reader.native_stack(nativenode)


@dataclass(frozen=True, slots=True)
class Location:
    """A frame's figures: own = stacks ending there, total = stacks passing through."""

    frame: Frame
    own_bytes: int
    own_count: int
    total_bytes: int
    total_count: int


@dataclass
class Profile:
    """A capture summed for one selection, with what the reports must say about it."""

    path: str
    reader: object
    selection: Selection
    tree: FrameTree
    native: bool
    stale_libraries: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def root(self) -> Node:
        return self.tree.root

    @property
    def total_bytes(self) -> int:
        return self.tree.root.bytes

    @property
    def total_count(self) -> int:
        return self.tree.root.count

    @staticmethod
    def children(node: Node) -> list[Node]:
        """Children with something selected, biggest first (bytes, then count)."""
        kids = [c for c in node.children.values() if c.bytes or c.count]
        kids.sort(key=lambda c: (-c.bytes, -c.count, c.frame.function, c.frame.file,
                                 c.frame.line))
        return kids

    def locations(self) -> list[Location]:
        """Every frame's own and total figures; `<no stack>` for stacks without frames."""
        frames = self.tree.frames
        out = [Location(frames[fid], *figures)
               for fid, figures in self.tree.locations.items() if figures[2] or figures[3]]
        root = self.root
        if root.own_bytes or root.own_count:
            out.append(Location(NO_STACK, root.own_bytes, root.own_count, root.own_bytes,
                                root.own_count))
        return out

    def stacks(self) -> Iterator[tuple[tuple[Frame, ...], int, int]]:
        """(frames outermost first, bytes, count) for every distinct call path, depth first
        with the biggest branches first; stacks with no frame at all appear as the single
        frame `<no stack>`."""
        root = self.root
        if root.own_bytes or root.own_count:
            yield (NO_STACK,), root.own_bytes, root.own_count
        todo: list[tuple[Node, tuple[Frame, ...]]] = [(root, ())]
        while todo:
            node, path = todo.pop()
            for child in reversed(self.children(node)):
                cpath = (*path, child.frame)
                if child.own_bytes or child.own_count:
                    yield cpath, child.own_bytes, child.own_count
                todo.append((child, cpath))

    def warnings(self) -> list[str]:
        """Lines to show the user: stale libraries first, then symbolizer notes."""
        from memtrace_core.report.offline import stale_message

        out = [stale_message(self.stale_libraries)] if self.stale_libraries else []
        if not getattr(self.reader, "complete", True) and not getattr(self.reader, "error",
                                                                       None):
            out.append("the capture is incomplete (the program was killed or the stream "
                       "cut): numbers cover what was recorded")
        out.extend(self.notes)
        return out


def load_profile(path: str | Path, selection: Selection = Selection.ALL,
                 show_internal: bool = False, cache_dir: Path | None = None,
                 use_cache: bool = True) -> Profile:
    """Read, symbolize (native captures, auto-detected from the header) and sum a capture.

    Native call paths are cached per capture (report.pathcache), so a second report of
    the same capture neither symbolizes nor merges stacks again.
    Raises UserError (one line) for a missing, foreign or corrupt file."""
    from memtrace_core.reader import read_capture

    reader = read_capture(path)
    native = bool((reader.header or {}).get("native"))
    view = SelectedStacks(reader, selection.metric)
    resolver = None
    file = None
    if native:
        from memtrace_core.report.offline import OfflineNative
        from memtrace_core.report.pathcache import cache_file

        resolver = OfflineNative(reader, cache_dir=cache_dir)
        if use_cache:
            file = cache_file(path, show_internal, cache_dir)
    frames = StackFrames(view, resolver)
    frames.show_internal = show_internal
    paths = CachedPaths(frames, file)
    tree = FrameTree(paths.table)
    bi, ci = selection.metric.bytes_index, selection.metric.count_index
    for sid in range(view.n_stacks):
        pynode, nativenode, _thread = view.stack_key(sid)
        counters = view.stack_counters(sid)
        tree.add(paths.ids(pynode, nativenode), counters[bi], counters[ci])
    profile = Profile(str(path), reader, selection, tree, native)
    if resolver is not None:
        resolver.close()
        paths.save(resolver.stale_libraries(), resolver.notes())
        stale, notes = paths.stale, paths.notes
        profile.stale_libraries = shown_stale_libraries(tree, stale)
        profile.notes = notes
    return profile


def shown_stale_libraries(tree: FrameTree, stale: list[str]) -> list[str]:
    """The stale libraries with a frame in the report (memtrace's own, hidden by
    default, or ones whose stacks were not selected, would only be noise)."""
    if not stale:
        return []
    stale_set = set(stale)
    shown = {f.module for f in tree.shown_frames() if f.kind is FrameKind.UNRESOLVED
             and f.module in stale_set}
    return sorted(shown)
