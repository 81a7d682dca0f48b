"""The call tree a report sums its stacks into: one selection's bytes and count per node,
and per location (frame) the own and total figures.

Same semantics as the model's CallTree (own = stacks ending at the node or frame, total =
stacks passing through; a recursive frame counts a stack once per location), built once
for one metric instead of kept incrementally for six. Frames are interned to small ints
(`FrameTable`), so the per-stack walk hashes ints, not Frames.
"""

from __future__ import annotations

from collections.abc import Iterable

from memtrace_core.frames import Frame


class FrameTable:
    """Frame <-> small int; paths become lists of ints."""

    def __init__(self, frames: Iterable[Frame] = ()) -> None:
        self.frames: list[Frame] = list(frames)
        self._by_value: dict[Frame, int] = {f: i for i, f in enumerate(self.frames)}
        self._by_object: dict[int, int] = {}  # id(frame) -> int, for frames seen before
        self._keep: list[Frame] = []  # keeps the objects behind _by_object alive

    def intern(self, path: Iterable[Frame]) -> list[int]:
        by_object = self._by_object
        out = []
        for frame in path:
            fid = by_object.get(id(frame))
            if fid is None:
                fid = self._by_value.get(frame)
                if fid is None:
                    fid = self._by_value[frame] = len(self.frames)
                    self.frames.append(frame)
                by_object[id(frame)] = fid
                self._keep.append(frame)
            out.append(fid)
        return out


class Node:
    """One frame at one position of the tree."""

    __slots__ = ("frame", "children", "bytes", "count", "own_bytes", "own_count")

    def __init__(self, frame: Frame | None) -> None:
        self.frame = frame
        self.children: dict[int, Node] = {}
        self.bytes = self.count = self.own_bytes = self.own_count = 0

    def __repr__(self) -> str:
        return f"Node({self.frame.function if self.frame else '<root>'}, {self.bytes})"


class FrameTree:
    """Stacks (as interned frame ids) summed into a tree and a per-location table."""

    def __init__(self, table: FrameTable) -> None:
        self.root = Node(None)
        self.table = table
        # location (frame id) -> [own_bytes, own_count, total_bytes, total_count]
        self.locations: dict[int, list[int]] = {}

    @property
    def frames(self) -> list[Frame]:
        return self.table.frames

    def add(self, ids: list[int], nbytes: int, count: int) -> None:
        """One stack: frame ids outermost first, with its bytes and allocation count."""
        node = self.root
        node.bytes += nbytes
        node.count += count
        frames = self.table.frames
        for fid in ids:
            child = node.children.get(fid)
            if child is None:
                child = node.children[fid] = Node(frames[fid])
            child.bytes += nbytes
            child.count += count
            node = child
        node.own_bytes += nbytes
        node.own_count += count
        if not ids:
            return
        locations = self.locations
        for fid in set(ids):
            loc = locations.get(fid)
            if loc is None:
                loc = locations[fid] = [0, 0, 0, 0]
            loc[2] += nbytes
            loc[3] += count
        leaf = locations[ids[-1]]
        leaf[0] += nbytes
        leaf[1] += count

    def node_count(self) -> int:
        n, todo = 0, [self.root]
        while todo:
            node = todo.pop()
            n += 1
            todo.extend(node.children.values())
        return n

    def shown_frames(self) -> list[Frame]:
        """Frames that some selected stack passes through."""
        return [self.table.frames[fid] for fid in self.locations]
