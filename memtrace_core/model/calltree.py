"""The call tree of top allocators, kept up to date incrementally from the reader.

Each reader stack (pynode, nativenode, thread) maps to a path of tree nodes; the model keeps
the counters it last applied for every stack, so an update adds only the difference along the
paths of the stacks that changed (`reader.take_changed()`): cost = what changed, not the
heap. A thread choice or a substring filter keeps only matching stacks, so every number is
that subset's own. Nodes are objects with stable identity: the UI holds them for selection
and expansion, and when a path is rebuilt (native names arrive), a vanished node names its
successor so the UI can move the selection to it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from memtrace_core.frames import Frame
from memtrace_core.model.metrics import N_COUNTERS, Metric
from memtrace_core.model.stacks import StackFrames

_ZERO = (0,) * N_COUNTERS


class Node:
    """One frame at one position of the call tree, with own and subtree counters."""

    __slots__ = ("id", "frame", "parent", "depth", "children", "own", "total", "refs",
                 "alive", "successor")

    def __init__(self, node_id: int, frame: Frame | None, parent: Node | None) -> None:
        self.id = node_id
        self.frame = frame
        self.parent = parent
        self.depth = 0 if parent is None else parent.depth + 1
        self.children: dict[int, Node] = {}  # by id() of the (interned) frame
        self.own = [0] * N_COUNTERS
        self.total = [0] * N_COUNTERS
        self.refs = 0  # stacks whose path goes through this node
        self.alive = True
        self.successor: Node | None = None

    def path(self) -> list[Node]:
        """Nodes from the first frame below the root down to this one."""
        out = []
        node: Node | None = self
        while node is not None and node.frame is not None:
            out.append(node)
            node = node.parent
        out.reverse()
        return out

    def __repr__(self) -> str:
        return f"Node({self.id}, {self.frame.function if self.frame else '<root>'})"


@dataclass(slots=True)
class Location:
    """A frame's flat totals: own = stacks ending there, total = stacks passing through."""

    frame: Frame
    own: list[int]
    total: list[int]


class CallTree:
    """Call-tree and top-locations model over a StreamReader (headless)."""

    def __init__(self, reader, frames: StackFrames | None = None) -> None:
        self.reader = reader
        self.frames = frames if frames is not None else StackFrames(reader)
        self.metric = Metric.IN_USE
        self.thread: int | None = None
        self.filter = ""
        self._next_id = 1
        self.root = Node(0, None, None)
        self._paths: dict[int, tuple[Node, ...]] = {}  # sid -> path (included stacks)
        self._applied: dict[int, tuple[int, ...]] = {}  # sid -> counters applied
        self._by_key: dict[tuple[int, int], set[int]] = {}  # (pynode, nativenode) -> sids
        self.locations: dict[int, Location] = {}  # by id() of the (interned) frame
        self.generation = 0  # bumps on every change the UI should repaint
        self._backlog_sids: set[int] = set()
        self._backlog_keys: set[tuple[int, int]] = set()

    # -- settings that rebuild -------------------------------------------------------------
    def set_metric(self, metric: Metric) -> None:
        """Sorting and shown numbers only: nothing to rebuild."""
        self.metric = metric
        self.generation += 1

    def set_thread(self, thread: int | None) -> None:
        """Keep one thread's stacks (None = all threads) and recount from the reader."""
        self.thread = thread
        self.rebuild()

    def set_filter(self, text: str) -> None:
        """Keep stacks with a frame whose function or file contains `text` (case-insensitive)."""
        self.filter = text.strip().lower()
        self.rebuild()

    def set_show_internal(self, show: bool) -> None:
        """Show or hide interpreter-internal frames."""
        self.frames.set_show_internal(show)
        self.rebuild()

    @property
    def show_internal(self) -> bool:
        return self.frames.show_internal

    # -- building --------------------------------------------------------------------------
    def rebuild(self) -> None:
        """Recount every stack from scratch (user-driven changes: thread, filter, internal)."""
        for node in self._walk(self.root):
            node.alive = False
        self.root = Node(0, None, None)
        self._paths.clear()
        self._applied.clear()
        self._by_key.clear()
        self.locations.clear()
        self.reader.take_changed()  # everything below reads current counters
        self._backlog_sids.clear()
        self._backlog_keys.clear()
        for sid in range(self.reader.n_stacks):
            self._apply(sid)
        self.generation += 1

    def update(self, budget_s: float | None = None) -> bool:
        """Apply what changed in the reader since the last call; True if anything did.

        With a time budget, work left over (e.g. many paths to rebuild when a batch of
        native names arrives) stays in a backlog for the next call, so one update never
        holds the session lock for long."""
        self._backlog_keys.update(self.frames.poll())
        self._backlog_sids.update(self.reader.take_changed())
        if not self._backlog_keys and not self._backlog_sids:
            return False
        deadline = None if budget_s is None else time.perf_counter() + budget_s
        n = 0
        while self._backlog_keys:
            key = self._backlog_keys.pop()
            for sid in list(self._by_key.get(key, ())):
                self._repath(sid)
                self._backlog_sids.discard(sid)
            n += 1
            if deadline is not None and n % 16 == 0 and time.perf_counter() > deadline:
                break
        while self._backlog_sids:
            self._apply(self._backlog_sids.pop())
            n += 1
            if deadline is not None and n % 64 == 0 and time.perf_counter() > deadline:
                break
        self.generation += 1
        return True

    @property
    def backlog(self) -> int:
        """Stacks and paths not applied yet (a budgeted update ran out of time)."""
        return len(self._backlog_keys) + len(self._backlog_sids)

    def _included(self, sid: int, key: tuple[int, int, int], path: tuple[Frame, ...]) -> bool:
        if self.thread is not None and key[2] != self.thread:
            return False
        if self.filter:
            needle = self.filter
            return any(needle in f.function.lower() or needle in f.file.lower() for f in path)
        return True

    def _apply(self, sid: int) -> None:
        counters = tuple(self.reader.stack_counters(sid))
        path = self._paths.get(sid)
        if path is None:
            if sid in self._applied:  # known and excluded by the thread/filter choice
                return
            key = tuple(self.reader.stack_key(sid))
            frames = self.frames.frames(key[0], key[1])
            self._by_key.setdefault((key[0], key[1]), set()).add(sid)
            if not self._included(sid, key, frames):
                self._applied[sid] = _ZERO
                return
            path = self._link(frames)
            self._paths[sid] = path
            self._applied[sid] = _ZERO
        old = self._applied[sid]
        delta = [n - o for n, o in zip(counters, old, strict=True)]
        if any(delta):
            self._add(path, delta)
            self._applied[sid] = counters

    def _link(self, frames: tuple[Frame, ...]) -> tuple[Node, ...]:
        node = self.root
        node.refs += 1
        out = []
        for frame in frames:
            child = node.children.get(id(frame))
            if child is None:
                child = Node(self._next_id, frame, node)
                self._next_id += 1
                node.children[id(frame)] = child
            child.refs += 1
            out.append(child)
            node = child
        return tuple(out)

    def _add(self, path: tuple[Node, ...], delta: list[int]) -> None:
        idx = [i for i, d in enumerate(delta) if d]
        root_total = self.root.total
        for i in idx:
            root_total[i] += delta[i]
        for node in path:
            total = node.total
            for i in idx:
                total[i] += delta[i]
        if path:
            own = path[-1].own
            for i in idx:
                own[i] += delta[i]
        else:
            for i in idx:
                self.root.own[i] += delta[i]
        seen: set[int] = set()
        loc = None
        locations = self.locations
        for node in path:
            key = id(node.frame)
            if key in seen:
                loc = locations[key]
                continue  # recursion: a location counts a stack once
            seen.add(key)
            loc = locations.get(key)
            if loc is None:
                loc = locations[key] = Location(node.frame, [0] * N_COUNTERS,
                                                [0] * N_COUNTERS)
            for i in idx:
                loc.total[i] += delta[i]
        if loc is not None:  # the innermost frame's location
            for i in idx:
                loc.own[i] += delta[i]

    def _repath(self, sid: int) -> None:
        """Move a stack to its new path (native names arrived), leaving successors behind."""
        old_path = self._paths.pop(sid, None)
        applied = self._applied.pop(sid, _ZERO)
        if old_path is not None:
            self._add(old_path, [-n for n in applied])
            self._unlink(old_path)
        self._apply(sid)
        new_path = self._paths.get(sid)
        if old_path and new_path:
            # align from the innermost frame: names replace native leaves, while frames
            # appear or vanish (merged interpreter frames) on the outer side
            last_old, last_new = len(old_path) - 1, len(new_path) - 1
            for depth, node in enumerate(old_path):
                if not node.alive and node.successor is None:
                    node.successor = new_path[max(0, last_new - (last_old - depth))]

    def _unlink(self, path: tuple[Node, ...]) -> None:
        self.root.refs -= 1
        for node in reversed(path):
            node.refs -= 1
            if node.refs == 0:
                node.alive = False
                parent = node.parent
                if parent is not None and parent.children.get(id(node.frame)) is node:
                    del parent.children[id(node.frame)]
        for node in path:
            if node.alive:
                continue
            loc = self.locations.get(id(node.frame))
            if loc is not None and not any(loc.total):
                del self.locations[id(node.frame)]

    # -- queries ---------------------------------------------------------------------------
    def value(self, node: Node) -> int:
        """The node's subtree number for the current metric (the sort key)."""
        return node.total[self.metric.sort_index]

    def children(self, node: Node) -> list[Node]:
        """Children with a non-zero value, largest first by the current metric (ties: by
        function name)."""
        idx = self.metric.sort_index
        kids = [c for c in node.children.values() if c.total[idx]]
        kids.sort(key=lambda c: (-c.total[idx], c.frame.function, c.frame.file, c.frame.line))
        return kids

    def hottest_path(self, node: Node) -> list[Node]:
        """From `node` down, always into the largest child: the `e` key."""
        out = []
        while True:
            kids = self.children(node)
            if not kids or kids[0].total[self.metric.sort_index] == 0:
                return out
            node = kids[0]
            out.append(node)

    def resolve(self, node: Node) -> Node:
        """The live node to show for one the UI holds (follows successors, then parents)."""
        seen = 0
        while not node.alive and seen < 64:
            seen += 1
            if node.successor is not None:
                node = node.successor
            elif node.parent is not None:
                node = node.parent
            else:
                return self.root
        return node if node.alive else self.root

    def find(self, *functions: str) -> Node | None:
        """The node reached by following children named `functions` from the root (the
        largest one when a name appears at several lines)."""
        node = self.root
        idx = self.metric.sort_index
        for name in functions:
            named = [c for c in node.children.values() if c.frame.function == name]
            if not named:
                return None
            node = max(named, key=lambda c: c.total[idx])  # the hottest of that name
        return node

    def top_locations(self, sort: str = "own", limit: int = 500) -> list[Location]:
        """The flat table: locations sorted by own bytes, total bytes or count."""
        m = self.metric
        if sort == "total":
            key = lambda loc: (-loc.total[m.bytes_index], -loc.own[m.bytes_index])  # noqa: E731
        elif sort == "count":
            key = lambda loc: (-loc.own[m.count_index], -loc.total[m.count_index])  # noqa: E731
        else:
            key = lambda loc: (-loc.own[m.bytes_index], -loc.total[m.bytes_index])  # noqa: E731
        rows = [loc for loc in self.locations.values() if any(loc.total)]
        rows.sort(key=lambda loc: (*key(loc), loc.frame.function))
        return rows[:limit]

    def thread_totals(self) -> dict[int, list[int]]:
        """Counters per thread index over all stacks (for the thread picker)."""
        out: dict[int, list[int]] = {}
        for sid in range(self.reader.n_stacks):
            thread = self.reader.stack_key(sid)[2]
            acc = out.setdefault(thread, [0] * N_COUNTERS)
            for i, n in enumerate(self.reader.stack_counters(sid)):
                acc[i] += n
        return out

    def _walk(self, node: Node) -> Iterator[Node]:
        stack = [node]
        while stack:
            n = stack.pop()
            yield n
            stack.extend(n.children.values())

    def node_count(self) -> int:
        """Nodes in the tree (root included)."""
        return sum(1 for _ in self._walk(self.root))
