"""Find a node again by its frame path after the model rebuilt its tree.

A filter or a thread choice keeps a subset of the same paths; showing or hiding
interpreter-internal frames inserts or removes frames along them. So the old path is
followed frame by frame from the new root: a frame found among the children is taken;
one found a few levels further down (frames inserted above it) is reached through them;
one found nowhere near (hidden now, or filtered away) is skipped. The result is the new
path as far as it could be followed: the node itself, or its nearest surviving ancestor.
"""

from __future__ import annotations

from collections.abc import Sequence

from memtrace_core.frames import Frame
from memtrace_core.model import CallTree, Node

SEARCH_DEPTH = 8  # inserted internal frames between two kept frames
SEARCH_NODES = 2000  # bound on the nodes looked at per frame


def frames_of(tree: CallTree, node: Node) -> list[Frame]:
    """A node's path as frames, outermost first, also for a node of a tree since rebuilt
    (whose parents may be gone: its key of frame ids is kept)."""
    key = getattr(node, "key", None)
    if key is not None:
        return [tree.frames[fid] for fid in key()]
    return [n.frame for n in node.path()]


def _child(node: Node, frame: Frame) -> Node | None:
    return node.child(frame)


def _below(node: Node, frame: Frame) -> list[Node] | None:
    """The path to the nearest descendant with this frame (breadth first, bounded)."""
    level: list[tuple[Node, tuple[Node, ...]]] = [(node, ())]
    seen = 0
    for _ in range(SEARCH_DEPTH):
        nxt: list[tuple[Node, tuple[Node, ...]]] = []
        for parent, path in level:
            for child in parent.children.values():
                seen += 1
                if child.frame == frame:
                    return [*path, child]
                nxt.append((child, (*path, child)))
            if seen > SEARCH_NODES:
                return None
        level = nxt
    return None


def relocate(tree: CallTree, frames: Sequence[Frame]) -> list[Node]:
    """Nodes from below the root to the deepest node matching `frames` (outermost first)."""
    node = tree.root
    out: list[Node] = []
    for frame in frames:
        child = _child(node, frame)
        if child is not None:
            out.append(child)
            node = child
            continue
        path = _below(node, frame)
        if path is not None:
            out.extend(path)
            node = path[-1]
        # else: this frame is gone (hidden or filtered away); keep following the rest
    return out
