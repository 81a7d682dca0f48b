"""The call tree of top allocators over a reader, kept up to date incrementally: the one
tree of `live`, `view` and every report.

The work is done by the C tree builder (`_tree.TreeCore`: stacks -> hybrid paths ->
nodes, counters committed bottom-up). This module gives it the shape the UI and the
reports read: `Node` objects (thin, created on demand, the same object for the same node
while someone holds it), sorting, the metric, the thread and substring filters, and the
reader's figures as of the last commit (`figures`), which the tree's root equals exactly.

A thread, filter or internal-frames change rebuilds the tree (`rebuild`): nodes of the
old tree are dead then, and `resolve()` finds their counterpart in the new one by their
path of frames, so the UI keeps its expansion and selection. A node replaced when native
names arrive names its successor.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from memtrace_core.frames import Frame
from memtrace_core.model._tree import TreeCore
from memtrace_core.model.metrics import N_COUNTERS, Metric


@dataclass(frozen=True, slots=True)
class Figures:
    """The reader's totals at the moment of a commit (what the tree holds)."""

    heap_bytes: int = 0
    heap_allocations: int = 0
    peak_bytes: int = 0
    peak_allocations: int = 0
    peak_time_us: int = 0
    total_allocated_bytes: int = 0
    total_allocations: int = 0
    records: int = 0
    last_time_us: int = 0
    ticks: int = 0  # entries of the reader's heap history
    temporary_bytes: int = 0
    temporary_allocations: int = 0
    reserved_bytes: int = 0  # address space reserved, apart from the heap (merged: none)

    @classmethod
    def of(cls, reader) -> Figures:
        return cls(reader.heap_bytes, reader.heap_allocations, reader.peak_bytes,
                   reader.peak_allocations, reader.peak_time_us,
                   reader.total_allocated_bytes, reader.total_allocations, reader.records,
                   reader.last_time_us, len(reader.history),
                   getattr(reader, "temporary_bytes", 0),
                   getattr(reader, "temporary_allocations", 0),
                   getattr(reader, "reserved_bytes", 0))

    def counters(self) -> tuple[int, ...]:
        """The whole program's counter vector (metrics.py's order)."""
        return (self.total_allocated_bytes, self.total_allocations, self.heap_bytes,
                self.heap_allocations, self.peak_bytes, self.peak_allocations,
                self.temporary_bytes, self.temporary_allocations)


@dataclass(frozen=True, slots=True)
class Reference:
    """A moment the delta metrics count from: the mark (`b`) or the growth window's start."""

    t_us: int  # the program's clock (reader.last_time_us)
    heap_bytes: int
    heap_allocations: int
    snapshot: bytes  # TreeCore.live_snapshot() then


GROWTH_WINDOW_S = 10.0  # default sliding window of the growth metric (--window)
GROWTH_STEP_US = 500_000  # a snapshot of every stack at most this often


class Node:
    """One frame at one position of the call tree (a view of the builder's node)."""

    __slots__ = ("_tree", "id", "nid", "epoch", "_path", "__weakref__")

    def __init__(self, tree: CallTree, nid: int) -> None:
        self._tree = tree
        self.nid = nid  # the builder's node number (reused after a rebuild)
        self.epoch = tree.core.epoch
        self.id = (self.epoch << 32) | nid  # unique for the tree's whole life
        self._path: tuple[int, ...] | None = None

    @property
    def alive(self) -> bool:
        return self.epoch == self._tree.core.epoch and self._tree.core.alive(self.nid)

    @property
    def frame(self) -> Frame | None:
        fid = self._tree.core.node_frame(self.nid) if self.epoch == self._tree.core.epoch \
            else (self._path[-1] if self._path else -1)
        return None if fid < 0 else self._tree.core.frames[fid]

    @property
    def parent(self) -> Node | None:
        if self.epoch != self._tree.core.epoch:  # a node of a tree since rebuilt
            if not self._path or len(self._path) < 2:
                return None
            ghost = Node(self._tree, -1)
            ghost.epoch, ghost.id, ghost._path = self.epoch, -1, self._path[:-1]
            return ghost
        pid = self._tree.core.parent(self.nid)
        return None if pid < 0 else self._tree.node(pid)

    @property
    def depth(self) -> int:
        if self.epoch != self._tree.core.epoch:
            return len(self._path or ())
        return self._tree.core.depth(self.nid)

    @property
    def total(self) -> list[int]:
        if self.epoch != self._tree.core.epoch:
            return [0] * N_COUNTERS
        return self._tree.core.total(self.nid)

    @property
    def own(self) -> list[int]:
        if self.epoch != self._tree.core.epoch:
            return [0] * N_COUNTERS
        return self._tree.core.own(self.nid)

    @property
    def children(self) -> dict[int, Node]:
        """Live children with something counted, by frame id (unsorted)."""
        tree = self._tree
        if self.epoch != tree.core.epoch:
            return {}
        core = tree.core
        return {core.node_frame(c): tree.node(c) for c in core.children(self.nid, 1)}

    def child(self, frame: Frame) -> Node | None:
        """The child for this frame, when it has something counted."""
        tree = self._tree
        fid = tree.core.frame_id(frame)
        if fid < 0 or self.epoch != tree.core.epoch:
            return None
        c = tree.core.child(self.nid, fid)
        return tree.node(c) if c >= 0 and tree.core.value(c, 1) else None

    @property
    def has_children(self) -> bool:
        return self.epoch == self._tree.core.epoch and self._tree.core.has_children(self.nid, 1)

    @property
    def successor(self) -> Node | None:
        if self.epoch != self._tree.core.epoch:
            return None
        s = self._tree.core.successor(self.nid)
        return None if s < 0 else self._tree.node(s)

    def key(self) -> tuple[int, ...]:
        """The node's path as frame ids: stable across rebuilds of the same tree."""
        if self.epoch != self._tree.core.epoch:
            return self._path or ()
        return self._tree.core.path(self.nid)

    def path(self) -> list[Node]:
        """Nodes from the first frame below the root down to this one."""
        out = []
        node: Node | None = self
        while node is not None and node.nid != 0:
            out.append(node)
            node = node.parent
        out.reverse()
        return out

    def __repr__(self) -> str:
        frame = self.frame
        return f"Node({self.nid}, {frame.function if frame else '<root>'})"


@dataclass(slots=True)
class Location:
    """A frame's flat totals: own = stacks ending there, total = stacks passing through,
    user = stacks whose innermost user-code frame (Python, or the user's own native
    library) it is."""

    frame: Frame
    own: list[int]
    total: list[int]
    user: list[int]


class CallTree:
    """Call-tree and top-locations model over a StreamReader (headless)."""

    def __init__(self, reader, namer=None, *, native: bool | None = None) -> None:
        if native is None:
            native = bool((getattr(reader, "header", None) or {}).get("native"))
        self.reader = reader
        self.namer = namer
        self.core = TreeCore(reader, native, namer)
        self.metric = Metric.IN_USE
        self.thread: int | None = None
        self.filter = ""
        self.generation = 0  # bumps on every change the UI should repaint
        self.figures = Figures()
        self._pending_figures: Figures | None = None
        self._work = 0
        self._nodes: weakref.WeakValueDictionary[int, Node] = weakref.WeakValueDictionary()
        self.mark: Reference | None = None  # since-mark counts from here
        self.window_us = int(GROWTH_WINDOW_S * 1e6)
        self._window: deque[Reference] = deque()  # snapshots; the oldest is growth's start
        self.growth_from: Reference | None = None
        self._baselines: dict[int, bytes | None] = {}  # set when the update in flight ends
        self._fixed_growth = False
        self.instant = None  # the timeline's cursor (timeline.Instant), or None
        self.timeline = None  # a Timeline kept as the tree updates (live: record_timeline)

    # -- nodes -----------------------------------------------------------------------------
    def node(self, node_id: int) -> Node:
        """The Node object for a builder node (one object per node while it is held)."""
        got = self._nodes.get(node_id)
        if got is None or got.epoch != self.core.epoch:
            got = Node(self, node_id)
            self._nodes[node_id] = got
        return got

    @property
    def root(self) -> Node:
        return self.node(0)

    @property
    def native(self) -> bool:
        return self.core.native

    @property
    def frames(self) -> list[Frame]:
        """Every frame interned so far (frame id -> Frame)."""
        return self.core.frames

    # -- settings that rebuild -------------------------------------------------------------
    def set_metric(self, metric: Metric) -> None:
        """Sorting and shown numbers only: nothing to rebuild."""
        self.metric = metric
        self.generation += 1

    def set_thread(self, thread: int | None) -> None:
        """Keep one thread's stacks (None = all threads) and recount from the reader."""
        self.thread = thread
        self.core.thread = -1 if thread is None else thread
        self.rebuild()

    def set_filter(self, text: str) -> None:
        """Keep stacks with a frame whose function or file contains `text` (case-insensitive)."""
        self.filter = text.strip().lower()
        needle = self.filter
        self.core.set_match(
            (lambda f: needle in f.function.lower() or needle in f.file.lower())
            if needle else None)
        self.rebuild()

    def set_show_internal(self, show: bool) -> None:
        """Show or hide interpreter-internal frames."""
        self.core.set_show_internal(show)
        self.rebuild(paths=True)

    @property
    def show_internal(self) -> bool:
        return self.core.show_internal

    # -- references of the delta metrics ---------------------------------------------------
    def _reference(self) -> Reference:
        r = self.reader
        return Reference(r.last_time_us, r.heap_bytes, r.heap_allocations,
                         self.core.live_snapshot())

    def _baseline(self, which: int, snapshot: bytes | None) -> None:
        if self.core.busy:  # the update in flight was counted without it: after it
            self._baselines[which] = snapshot
        else:
            self.core.set_baseline(which, snapshot)

    def set_mark(self) -> Reference:
        """Mark now (`b`): the since-mark metric counts in use from here (again when
        marked again). Counted at the next update."""
        self.mark = self._reference()
        self._baseline(0, self.mark.snapshot)
        self.generation += 1
        return self.mark

    def clear_mark(self) -> None:
        """Forget the mark (`B`): since-mark counts from the start again."""
        self.mark = None
        self._baseline(0, None)
        self.generation += 1

    def set_window(self, seconds: float) -> None:
        """The growth metric's sliding window."""
        self.window_us = max(1, int(seconds * 1e6))

    def set_growth_from(self, reference: Reference | None) -> None:
        """A fixed start for the growth metric (a capture read at once: `view`), instead
        of the sliding window; None: the sliding window again."""
        self._window.clear()
        if reference is not None:
            self._window.append(reference)
        self._fixed_growth = reference is not None
        self.growth_from = reference
        self._baseline(1, None if reference is None else reference.snapshot)

    def _slide_window(self) -> None:
        """Before an update: a snapshot every GROWTH_STEP_US of the program's clock, and
        growth counted from the oldest one still inside the window."""
        if self._fixed_growth:
            return
        now = self.reader.last_time_us
        window = self._window
        if not window or now - window[-1].t_us >= GROWTH_STEP_US:
            window.append(self._reference())
        while len(window) > 1 and window[1].t_us <= now - self.window_us:
            window.popleft()
        if window[0] is not self.growth_from:
            self.growth_from = window[0]
            self.core.set_baseline(1, window[0].snapshot)

    def record_timeline(self) -> None:
        """Keep a timeline while the program runs (`live`): every stack's in-use figures at
        instants taken as the tree updates, thinned evenly (model/timeline.py)."""
        from memtrace_core.model.timeline import Timeline

        self.timeline = Timeline()

    def _grow_timeline(self) -> None:
        timeline = self.timeline
        if timeline is None or not getattr(self.reader, "header", None):
            return
        now = self.reader.last_time_us
        if not timeline.points or now - timeline.points[-1].t_us >= timeline.step_us:
            timeline.add(self.reader)

    def set_instant(self, instant) -> None:
        """Show memory in use at a timeline instant (metric AT_CURSOR); None: back to now."""
        self.instant = instant
        self._baseline(2, None if instant is None else instant.snapshot)
        if instant is not None:
            self.set_metric(Metric.AT_CURSOR)
        elif self.metric is Metric.AT_CURSOR:
            self.set_metric(Metric.IN_USE)
        if not self.core.busy:
            self.update()

    @property
    def growth_span_s(self) -> float:
        """Seconds the growth figures cover (0 before the program's clock moved)."""
        start = self.growth_from
        if start is None:
            return 0.0
        return max(0.0, (self.figures.last_time_us - start.t_us) / 1e6)

    def rate(self, delta: int) -> float:
        """A growth counter as bytes (or allocations) per second."""
        span = self.growth_span_s
        return delta / span if span > 0 else 0.0

    def whole_counters(self) -> list[int]:
        """The whole program's counters as of the last commit (metrics.py's order)."""
        f = self.figures
        out = list(f.counters())
        for ref in (self.mark, self.growth_from):
            out += [f.heap_bytes - (ref.heap_bytes if ref else 0),
                    f.heap_allocations - (ref.heap_allocations if ref else 0)]
        at = self.instant
        out += [at.heap_bytes, at.heap_allocations] if at else [0, 0]
        return out

    # -- building --------------------------------------------------------------------------
    def rebuild(self, paths: bool = False) -> None:
        """Recount every stack from the reader (user-driven changes: thread, filter,
        internal frames; `paths`: the frames shown changed)."""
        epoch = self.core.epoch
        for node in list(self._nodes.values()):  # remember where the UI's nodes were
            if node.epoch == epoch and node._path is None:
                node._path = self.core.path(node.nid)
        figures = self._pending_figures or Figures.of(self.reader)
        self.core.reset(paths)
        for which, snapshot in self._baselines.items():
            self.core.set_baseline(which, snapshot)
        self._baselines.clear()
        self.core.begin_all()
        self.core.step()
        self._pending_figures = None
        self.figures = figures
        self.generation += 1

    def begin(self) -> int:
        """Start an update: names that arrived, and the stacks changed in the reader.
        The reader must not be fed until step() says the update is done."""
        if self.core.busy:
            return 0
        for which, snapshot in self._baselines.items():
            self.core.set_baseline(which, snapshot)
        self._baselines.clear()
        self._slide_window()
        self._grow_timeline()
        names = self.namer.poll() if self.namer is not None else {}
        if names:
            self.core.rename(names)
        n = self.core.begin() + len(names)
        self._pending_figures = Figures.of(self.reader)
        self._work = n
        return n

    def step(self, budget_s: float | None = None) -> bool:
        """Up to `budget_s` seconds of the update's work (None: all of it); True when it
        is done. Between steps the tree is consistent (its root equals `figures`)."""
        moved = self.core.stacks_moved
        done = self.core.step(-1.0 if budget_s is None else budget_s)
        changed = self.core.stacks_moved != moved
        if self.core.committed and self._pending_figures is not None:
            changed = changed or bool(self._work) or self._pending_figures != self.figures
            self.figures = self._pending_figures
            self._pending_figures = None
            self._work = 0
        if changed:
            self.generation += 1
        return done

    def update(self, budget_s: float | None = None) -> bool:
        """Absorb what changed in the reader (and names that arrived), all of it unless a
        budget is given; True if anything changed."""
        before = self.generation
        if not self.core.busy:
            self.begin()
        self.step(budget_s)
        return self.generation != before

    @property
    def busy(self) -> bool:
        """An update is between steps (don't feed the reader)."""
        return self.core.busy

    # -- queries ---------------------------------------------------------------------------
    def value(self, node: Node) -> int:
        """The node's subtree number for the current metric (the sort key)."""
        return node.total[self.metric.sort_index]

    def children(self, node: Node) -> list[Node]:
        """Children with a non-zero value, largest first by the current metric (ties: by
        function name)."""
        if node.epoch != self.core.epoch:
            return []
        idx = self.metric.sort_index
        core = self.core
        frames = core.frames
        rows = []
        for c in core.children(node.nid, idx):
            f = frames[core.node_frame(c)]
            rows.append((-core.value(c, idx), f.function, f.file, f.line, c))
        rows.sort()
        return [self.node(r[-1]) for r in rows]

    def hottest_path(self, node: Node) -> list[Node]:
        """From `node` down, always into the largest child: the `e` key."""
        out = []
        while True:
            kids = self.children(node)
            if not kids:
                return out
            node = kids[0]
            out.append(node)

    def resolve(self, node: Node) -> Node:
        """The live node to show for one the UI holds: the same path after a rebuild
        (frames no longer shown are skipped), the successor after a rename, else the
        nearest live ancestor."""
        core = self.core
        if node.epoch != core.epoch:
            cur = 0
            for fid in node._path or ():
                c = core.child(cur, fid)
                if c >= 0 and core.value(c, 1):
                    cur = c
            return self.node(cur)
        seen = 0
        nid = node.nid
        while not core.alive(nid) and seen < 64:
            seen += 1
            s = core.successor(nid)
            nid = s if s >= 0 else core.parent(nid)
            if nid < 0:
                return self.root
        return self.node(nid) if core.alive(nid) else self.root

    def node_at(self, key: tuple[int, ...]) -> Node | None:
        """The node with this path of frame ids (Node.key), or None."""
        cur = 0
        for fid in key:
            cur = self.core.child(cur, fid)
            if cur < 0:
                return None
        return self.node(cur)

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
        """The flat table: locations sorted by own bytes, total bytes, count, or own bytes
        of user code ("user")."""
        m = self.metric
        block, index, then = {
            "own": (0, m.bytes_index, (1, m.bytes_index)),
            "total": (1, m.bytes_index, (0, m.bytes_index)),
            "count": (0, m.count_index, (1, m.count_index)),
            "user": (2, m.bytes_index, (1, m.bytes_index)),
        }[sort]
        fids = self.core.locations(block, index, limit + 64 if limit else 0)
        rows = []
        for fid in fids:
            own, total, user = self.core.location(fid)
            rows.append(Location(self.core.frames[fid], own, total, user))
        blocks = ("own", "total", "user")

        def key(loc: Location):
            first = getattr(loc, blocks[block])[index]
            second = getattr(loc, blocks[then[0]])[then[1]]
            return (-first, -second, loc.frame.function, loc.frame.file, loc.frame.line)

        rows = [r for r in rows if any(r.total)]
        rows.sort(key=key)
        return rows[:limit] if limit else rows

    def thread_totals(self) -> dict[int, list[int]]:
        """Counters per thread index over all stacks (for the thread picker)."""
        return self.core.thread_totals()

    def walk(self, node: Node | None = None) -> Iterator[Node]:
        """Every node with something counted below `node` (default: the root), depth
        first."""
        stack = [(node or self.root).nid]
        core = self.core
        while stack:
            nid = stack.pop()
            yield self.node(nid)
            stack.extend(core.children(nid, 1))

    def node_count(self) -> int:
        """Nodes in the tree (root included)."""
        return self.core.live_nodes

    # -- names -----------------------------------------------------------------------------
    def pending_names(self) -> int:
        """Native addresses waiting for their names."""
        return self.namer.pending() if self.namer is not None else 0

    def close(self) -> None:
        """Stop the symbolizer worker, if any (flushing the persistent cache)."""
        if self.namer is not None:
            self.namer.close()
