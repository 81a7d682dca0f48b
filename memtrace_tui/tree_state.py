"""Find nodes again by their frame paths after the model rebuilt its tree.

A filter or a thread choice keeps a subset of the same paths; showing or hiding
interpreter-internal frames inserts or removes frames along them (the interpreter's own
start-up chain alone is some thirty frames above the first Python line). So an old path is
followed from the new root through direct children as far as it goes, starting from the
frame that leads furthest (the frames before it were removed: hidden now); where no frame
of the path is a child, the next one is searched for further down (frames were inserted
above it) and reached through them, or skipped when it is nowhere near (filtered away).
The result is the new path as far as it could be followed: the node itself, or its nearest
surviving ancestor.

The expanded nodes of a view share their prefixes, so a Relocator remembers every prefix it
has followed: carrying over a whole expanded path costs one walk down it, not one per node.
The searches below a node share one budget, so a rebuild never stalls the UI.
"""

from __future__ import annotations

from collections.abc import Sequence

from memtrace_core.frames import Frame
from memtrace_core.model import CallTree, Node

SEARCH_DEPTH = 256  # frames inserted between two kept frames (start-up chains: 79 on 3.10)
SEARCH_NODES = 4000  # nodes looked at by one search below a node
BUDGET = 60_000  # nodes looked at by all the searches of one carry-over


def frames_of(tree: CallTree, node: Node) -> list[Frame]:
    """A node's path as frames, outermost first, also for a node of a tree since rebuilt
    (whose parents may be gone: its key of frame ids is kept)."""
    key = getattr(node, "key", None)
    if key is not None:
        return [tree.frames[fid] for fid in key()]
    return [n.frame for n in node.path()]


Chain = tuple  # (node, previous chain) or (): a followed path, shared by its extensions


class Relocator:
    """Follows old frame paths in the rebuilt tree, remembering the prefixes it followed."""

    def __init__(self, tree: CallTree) -> None:
        self.tree = tree
        self.budget = BUDGET
        self._followed: dict[tuple[Frame, ...], tuple[Node, Chain]] = {(): (tree.root, ())}

    def path(self, frames: Sequence[Frame]) -> list[Node]:
        """Nodes from below the root to the deepest node matching `frames`."""
        frames = tuple(frames)
        at = len(frames)
        while frames[:at] not in self._followed:
            at -= 1
        node, chain = self._followed[frames[:at]]
        while at < len(frames):
            start, reach = self._best_run(node, frames, at)
            if start is None:
                # not here: frames were inserted above it (found below), or it is gone
                below = self._below(node, frames[at])
                for found in below or ():
                    node, chain = found, (found, chain)
                self._followed[frames[:at + 1]] = (node, chain)
                at += 1
                continue
            for gone in range(at, start):  # removed here (hidden now)
                self._followed[frames[:gone + 1]] = (node, chain)
            for i in range(start, reach):
                node = node.child(frames[i])
                chain = (node, chain)
                self._followed[frames[:i + 1]] = (node, chain)
            at = reach
        out: list[Node] = []
        while chain:
            out.append(chain[0])
            chain = chain[1]
        out.reverse()
        return out

    @staticmethod
    def _reach(node: Node, frames: tuple[Frame, ...], start: int) -> int:
        """How far the path follows from frames[start] on through direct children."""
        at = start
        for frame in frames[start:]:
            child = node.child(frame)
            if child is None:
                break
            node, at = child, at + 1
        return at

    def _best_run(self, node: Node, frames: tuple[Frame, ...], at: int
                  ) -> tuple[int | None, int]:
        """Where to go on from `node`: the frame among frames[at:] (within SEARCH_DEPTH)
        that is a child here and from which the path follows furthest through direct
        children; the frames before it were removed (internal frames hidden). The next
        frame wins when it leads to the end. (A native start-up frame can be a child here
        for the stacks whose Python frames are all hidden, while this path goes on from its
        Python frame further along.)"""
        best, best_reach = None, -1
        for start in range(at, min(len(frames), at + 1 + SEARCH_DEPTH)):
            reach = self._reach(node, frames, start)
            if reach > start and reach > best_reach:
                best, best_reach = start, reach
                if reach == len(frames):
                    break
        return best, best_reach

    def _below(self, node: Node, frame: Frame) -> list[Node] | None:
        """The path to the nearest descendant with this frame (breadth first, bounded)."""
        level: list[tuple[Node, tuple[Node, ...]]] = [(node, ())]
        limit = min(SEARCH_NODES, self.budget)
        seen = 0
        try:
            for _ in range(SEARCH_DEPTH):
                nxt: list[tuple[Node, tuple[Node, ...]]] = []
                for parent, path in level:
                    for child in parent.children.values():
                        seen += 1
                        if child.frame == frame:
                            return [*path, child]
                        nxt.append((child, (*path, child)))
                    if seen > limit:
                        return None
                if not nxt:
                    return None
                level = nxt
            return None
        finally:
            self.budget -= seen


def relocate(tree: CallTree, frames: Sequence[Frame]) -> list[Node]:
    """One path found again (see Relocator)."""
    return Relocator(tree).path(frames)
