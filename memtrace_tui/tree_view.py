"""The call-tree panel: expandable rows of frames with their numbers, coloured by frame kind.

Selection and expansion are held as model nodes (stable objects), so they stay put when
numbers change and rows reorder; a node replaced when native names arrive hands them to its
successor. When the model rebuilds the whole tree (filter, thread, internal frames), they
are carried over by path: each held node's frames are looked up again in the new tree
(tree_state.Relocator), so what was open stays open and the cursor stays on its frame.

Deep stacks stay readable: indentation is capped by the width, and rows deeper than the cap
show their depth as a number instead of more guides.
"""

from __future__ import annotations

from textual.binding import Binding

from memtrace_core.model import CallTree, Node, Session
from memtrace_tui.columns import Layout, grand_total
from memtrace_tui.kinds import location
from memtrace_tui.lines_view import KIND_ROLES, LinesView, Row
from memtrace_tui.messages import SelectionChanged
from memtrace_tui.tree_state import Relocator, frames_of
from memtrace_tui.tree_text import empty_message, frame_matches, split_matches

NAME_ROOM = 28  # columns kept for arrow, mark and the start of a name however deep


class CallTreeView(LinesView):
    """Keyboard-navigable call tree over the session's CallTree."""

    BINDINGS = [
        Binding("right,l,enter", "expand", "Expand"),
        Binding("left,h", "collapse", "Collapse"),
        Binding("e", "expand_hottest", "Hottest"),
        Binding("c", "collapse_all", "Collapse all"),
    ]

    def __init__(self, session: Session, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.expanded: dict[int, Node] = {}
        self.selected: Node | None = None
        self.row_nodes: list[Node] = []
        # rows' (total, own) as of the last rebuild: a model update committed since shows
        # only with the next repaint, with the header's figures of the same moment. Taken
        # for the rows around the window (a node's own costs a walk of its children: all
        # rows of a wide tree cost more than a frame); the others when first shown, while
        # the model has not moved on (else the rows are rebuilt first: window_shown)
        self.row_numbers: dict[int, tuple[list[int], list[int]]] = {}
        self._numbers_generation = -1
        self.on_rebuilt = lambda: None  # the screen's: show the header of this moment
        self._root: Node | None = None  # the model root the held nodes belong to
        self._grand = 0

    @property
    def tree(self) -> CallTree:
        return self.session.tree

    # -- rows ------------------------------------------------------------------------------
    def _carry_over(self) -> None:
        """The model rebuilt its tree: find the held nodes again by their frame paths."""
        tree = self.tree
        # the selection first, then the deepest paths: a prefix is placed once (the paths
        # share them), as the longest path through it needs it
        finder = Relocator(tree)
        selected = None
        if self.selected is not None:
            path = finder.path(frames_of(tree, self.selected))
            selected = path[-1] if path else None
        old_expanded = sorted(self.expanded.values(), key=lambda n: -n.depth)
        self.expanded = {}
        for node in old_expanded:
            for new in finder.path(frames_of(tree, node)):
                self.expanded[new.id] = new
        if selected is not None:
            for new in selected.path()[:-1]:
                self.expanded[new.id] = new
        self.selected = selected

    def rebuild(self) -> None:
        """Recompute the visible rows from the model (call with the session lock held)."""
        tree = self.tree
        if self._root is not None and tree.root is not self._root:
            self._carry_over()
        self._root = tree.root
        for nid, node in list(self.expanded.items()):
            if not node.alive:
                del self.expanded[nid]
                alive = tree.resolve(node)
                if alive is not tree.root:
                    self.expanded[alive.id] = alive
        if self.selected is not None and not self.selected.alive:
            self.selected = tree.resolve(self.selected)
            if self.selected is tree.root:
                self.selected = None
            else:  # replaced in place: keep its new self visible
                for node in self.selected.path()[:-1]:
                    self.expanded[node.id] = node
        self._grand = grand_total(tree)
        nodes: list[Node] = []
        stack: list[Node] = list(reversed(tree.children(tree.root)))
        expanded = self.expanded
        while stack:
            node = stack.pop()
            nodes.append(node)
            if node.id in expanded:
                stack.extend(reversed(tree.children(node)))
        self.row_nodes = nodes
        self.row_numbers = {}
        self._numbers_generation = tree.generation
        cursor = 0
        if self.selected is not None:
            try:
                cursor = nodes.index(self.selected)
            except ValueError:  # selected node filtered away or collapsed above it
                cursor = self._nearest_visible(self.selected)
        self.selected = nodes[cursor] if nodes else None
        self.set_row_count(len(nodes), cursor)
        page = self.page_height
        for index in range(max(0, self.top - page), min(len(nodes), self.top + 2 * page)):
            self.numbers(index)  # a page up or down shows this moment too

    def numbers(self, index: int) -> tuple[list[int], list[int]]:
        """Row `index`'s (total, own) as of the last rebuild."""
        got = self.row_numbers.get(index)
        if got is None:
            node = self.row_nodes[index]
            got = self.row_numbers[index] = (node.total, node.own)
        return got

    def window_shown(self) -> None:
        """The window jumped past the rows whose numbers were taken: if the model moved on
        since, rebuild (with the header) rather than show newer numbers under it."""
        if self.tree.generation != self._numbers_generation and any(
                index not in self.row_numbers for index in self.visible_range()):
            self.refresh_from_model()

    def format_row(self, index: int) -> Row:
        node = self.row_nodes[index]
        total, own = self.numbers(index)
        tree = self.tree
        metric = tree.metric
        layout = Layout.for_width(self.size.width)
        numbers = layout.numbers(metric, total, own, self._grand, span_s=tree.growth_span_s)
        frame = node.frame
        kind = KIND_ROLES.get(frame.kind, "python")
        hot = self._grand and total[metric.sort_index] * 2 >= self._grand
        pieces: list[tuple[str, str]] = [(numbers, "number"),
                                         (self.indent(node.depth - 1, layout), "guide")]
        arrow = ("▼ " if node.id in self.expanded else "▶ ") if node.has_children else "  "
        pieces.append((arrow, "dim"))
        pieces.append((frame.kind.mark + " ", kind))
        needle = tree.filter
        name_role = f"{kind} hot" if hot else kind
        pieces += split_matches(frame.function, needle, name_role)
        where = location(frame)
        if where:
            pieces.append(("  ", "dim"))
            pieces += split_matches(where, needle if frame_matches(frame, needle) else "",
                                    "dim")
        return tuple(pieces)

    def indent(self, depth: int, layout: Layout) -> str:
        """Guides for `depth` levels, squeezed beyond what the width allows."""
        room = self.size.width - 1 - layout.numbers_width - NAME_ROOM
        levels = max(3, room // 2)
        if depth <= levels:
            return "│ " * depth
        return "│ " * (levels - 3) + f"{depth:>4}› "

    def empty_text(self) -> str:
        return empty_message(self.tree)

    def _nearest_visible(self, node: Node) -> int:
        index = {id(n): i for i, n in enumerate(self.row_nodes)}
        walk: Node | None = node
        while walk is not None:
            if id(walk) in index:
                return index[id(walk)]
            walk = walk.parent
        return 0

    def refresh_from_model(self) -> None:
        with self.session.lock:
            self.rebuild()
            self.on_rebuilt()

    def selected_numbers(self) -> tuple[list[int], list[int]] | None:
        """The selected row's (own, total) as shown."""
        if self.selected is None or not self.row_nodes:
            return None
        if not (0 <= self.cursor < len(self.row_nodes)
                and self.row_nodes[self.cursor] is self.selected):
            return None
        total, own = self.numbers(self.cursor)
        return own, total

    def cursor_moved(self) -> None:
        if self.row_nodes:
            self.selected = self.row_nodes[self.cursor]
            self.post_message(SelectionChanged())

    def row_activated(self) -> None:
        node = self.selected
        if node is not None and node.id in self.expanded:
            self.action_collapse()
        elif node is not None and node.has_children:
            self.expanded[node.id] = node
            self.refresh_from_model()

    def select(self, node: Node) -> None:
        """Open every ancestor of `node` and put the cursor on it."""
        for above in node.path()[:-1]:
            self.expanded[above.id] = above
        self.selected = node
        self.refresh_from_model()
        self.post_message(SelectionChanged())

    # -- actions ---------------------------------------------------------------------------
    def action_expand(self) -> None:
        node = self.selected
        if node is None:
            return
        if node.id in self.expanded or not node.has_children:
            self.move_cursor(1)  # already open: step into the first child
            return
        self.expanded[node.id] = node
        self.refresh_from_model()

    def action_collapse(self) -> None:
        node = self.selected
        if node is None:
            return
        if node.id in self.expanded:
            del self.expanded[node.id]
        elif node.parent is not None and node.parent.frame is not None:
            self.selected = node.parent  # on a leaf or a closed node: go to the parent
        self.refresh_from_model()
        self.post_message(SelectionChanged())

    def action_expand_hottest(self) -> None:
        with self.session.lock:
            start = self.selected or self.tree.root
            path = self.tree.hottest_path(start)
            if start is not self.tree.root:
                self.expanded[start.id] = start
            for node in path[:-1]:
                self.expanded[node.id] = node
            if path:
                self.selected = path[-1]
            self.rebuild()
            self.on_rebuilt()
        self.post_message(SelectionChanged())

    def action_collapse_all(self) -> None:
        self.expanded.clear()
        if self.selected is not None:
            top = self.selected.path()
            self.selected = top[0] if top else None
        self.refresh_from_model()
        self.post_message(SelectionChanged())
