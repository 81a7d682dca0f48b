"""The call tree a report sums its stacks into: one selection's bytes and count per node,
and per location (frame) the own and total figures.

Same semantics as the model's CallTree (own = stacks ending at the node or frame, total =
stacks passing through; a recursive frame counts a stack once per location), built once
for one metric instead of kept incrementally for six: frames are interned to small ints
first (by object identity, then by value), so the per-stack walk hashes ints, not Frames.
"""

from __future__ import annotations

from memtrace_core.frames import Frame


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
    """Stacks summed into a tree and a per-location table."""

    def __init__(self) -> None:
        self.root = Node(None)
        self.frames: list[Frame] = []  # interned frame id -> Frame
        self._by_value: dict[Frame, int] = {}
        self._by_object: dict[int, int] = {}  # id(frame) -> interned id
        self._keep: list[Frame] = []  # keeps the objects behind _by_object alive
        # location id -> [own_bytes, own_count, total_bytes, total_count]
        self.locations: dict[int, list[int]] = {}

    def intern(self, path) -> list[int]:
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

    def add(self, path, nbytes: int, count: int) -> None:
        """One stack: frames outermost first, with its bytes and allocation count."""
        ids = self.intern(path)
        node = self.root
        node.bytes += nbytes
        node.count += count
        frames = self.frames
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
