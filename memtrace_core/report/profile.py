"""What every report starts from: a capture read, its stacks turned into frames and summed
into the model's call tree for one selection (all allocations, leaks or the peak).

The tree is the model's `CallTree` over a view of the reader that holds only the stacks
with something to show for the selection, so a `--leaks` report of a program that freed
most of its memory symbolizes only the stacks that still hold memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.model.calltree import CallTree, Node
from memtrace_core.model.metrics import Metric
from memtrace_core.model.stacks import StackFrames

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
        self.maps = reader.maps
        self.maps_history = reader.maps_history
        self.header = reader.header

    @property
    def n_stacks(self) -> int:
        return len(self._sids)

    def stack_key(self, sid: int) -> tuple[int, int, int]:
        return self._reader.stack_key(self._sids[sid])

    def stack_counters(self, sid: int) -> tuple[int, ...]:
        return self._reader.stack_counters(self._sids[sid])

    def take_changed(self) -> list[int]:
        return []

    def py_stack(self, pynode: int):
        return self._reader.py_stack(pynode)

    def native_stack(self, nativenode: int):
        return self._reader.native_stack(nativenode)


@dataclass
class Profile:
    """A capture summed for one selection, with what the reports must say about it."""

    path: str
    reader: object
    selection: Selection
    tree: CallTree
    native: bool
    stale_libraries: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def metric(self) -> Metric:
        return self.selection.metric

    @property
    def total_bytes(self) -> int:
        return self.tree.root.total[self.metric.bytes_index]

    @property
    def total_count(self) -> int:
        return self.tree.root.total[self.metric.count_index]

    def bytes_of(self, node: Node) -> int:
        return node.total[self.metric.bytes_index]

    def count_of(self, node: Node) -> int:
        return node.total[self.metric.count_index]

    def children(self, node: Node) -> list[Node]:
        """Children with something selected, biggest first (bytes, then count)."""
        bi, ci = self.metric.bytes_index, self.metric.count_index
        kids = [c for c in node.children.values() if c.total[bi] or c.total[ci]]
        kids.sort(key=lambda c: (-c.total[bi], -c.total[ci], c.frame.function,
                                 c.frame.file, c.frame.line))
        return kids

    def stacks(self) -> Iterator[tuple[tuple[Frame, ...], int, int]]:
        """(frames outermost first, bytes, count) for every distinct call path, biggest
        first; stacks with no frame at all appear as the single frame `<no stack>`."""
        bi, ci = self.metric.bytes_index, self.metric.count_index
        root = self.tree.root
        if root.own[bi] or root.own[ci]:
            yield (NO_STACK,), root.own[bi], root.own[ci]
        todo: list[tuple[Node, tuple[Frame, ...]]] = [(root, ())]
        while todo:
            node, path = todo.pop()
            for child in reversed(self.children(node)):
                cpath = (*path, child.frame)
                if child.own[bi] or child.own[ci]:
                    yield cpath, child.own[bi], child.own[ci]
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
                 show_internal: bool = False, cache_dir: Path | None = None) -> Profile:
    """Read, symbolize (native captures, auto-detected from the header) and sum a capture.

    Raises UserError (one line) for a missing, foreign or corrupt file."""
    from memtrace_core.reader import read_capture

    reader = read_capture(path)
    native = bool((reader.header or {}).get("native"))
    view = SelectedStacks(reader, selection.metric)
    resolver = None
    if native:
        from memtrace_core.report.offline import OfflineNative

        resolver = OfflineNative(reader, cache_dir=cache_dir)
    frames = StackFrames(view, resolver)
    frames.show_internal = show_internal
    tree = CallTree(view, frames)
    tree.set_metric(selection.metric)
    tree.rebuild()
    profile = Profile(str(path), reader, selection, tree, native)
    if resolver is not None:
        resolver.close()
        profile.stale_libraries = shown_stale_libraries(tree, resolver.stale_libraries())
        profile.notes = resolver.notes()
    return profile


def shown_stale_libraries(tree: CallTree, stale: list[str]) -> list[str]:
    """The stale libraries with a frame in the report (memtrace's own, hidden by
    default, or ones whose stacks were not selected, would only be noise)."""
    if not stale:
        return []
    stale_set = set(stale)
    shown = {f.module for f in tree.locations if f.kind is FrameKind.UNRESOLVED
             and f.module in stale_set}
    return sorted(shown)
