"""The call-tree panel: expandable rows with total/own/percent/count, coloured by frame kind.

Selection and expansion are held as model nodes (stable objects), not row numbers, so they
stay put when numbers change and rows reorder; a node replaced when native names arrive
hands its selection and expansion to its successor.
"""

from __future__ import annotations

from rich.style import Style
from textual.binding import Binding

from memtrace_core.model import CallTree, Node, Session, format_bytes
from memtrace_tui.kinds import KIND_STYLES, location
from memtrace_tui.lines_view import LinesView
from memtrace_tui.messages import SelectionChanged

NUM = Style(color="#c0c0c0")
DIM = Style(color="#808080")
HOT = Style(bold=True, underline=True)
GUIDE = Style(color="#5f5f5f")

COLUMNS = f"{'total':>10} {'own':>10} {'%':>6} {'count':>9}  frame"


class CallTreeView(LinesView):
    """Keyboard-navigable call tree over the session's CallTree."""

    BINDINGS = [
        Binding("right,l,enter", "expand", "Expand"),
        Binding("left,h", "collapse", "Collapse"),
        Binding("e", "expand_hottest", "Hottest path"),
        Binding("c", "collapse_all", "Collapse all"),
    ]

    def __init__(self, session: Session, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.expanded: dict[int, Node] = {}
        self.selected: Node | None = None
        self.row_nodes: list[Node] = []

    @property
    def tree(self) -> CallTree:
        return self.session.tree

    # -- rows ------------------------------------------------------------------------------
    def rebuild(self) -> None:
        """Recompute visible rows from the model (call with the session lock held)."""
        tree = self.tree
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
        metric = tree.metric
        bi, ci, si = metric.bytes_index, metric.count_index, metric.sort_index
        grand = tree.root.total[si] or 1
        rows = []
        nodes: list[Node] = []
        stack: list[tuple[Node, int]] = [(c, 0) for c in reversed(tree.children(tree.root))]
        while stack:
            node, depth = stack.pop()
            kids = tree.children(node) if node.id in self.expanded else None
            has_kids = node.has_children
            arrow = ("▼ " if kids is not None else "▶ ") if has_kids else "  "
            frame = node.frame
            pct = 100.0 * node.total[si] / grand
            rows.append([
                (f"{format_bytes(node.total[bi]):>10} {format_bytes(node.own[bi]):>10} "
                 f"{pct:5.1f}% {node.total[ci]:>9}  ", NUM),
                ("│ " * depth, GUIDE),
                (arrow, DIM),
                (frame.kind.mark + " ", KIND_STYLES[frame.kind]),
                (frame.function, KIND_STYLES[frame.kind] + (HOT if pct >= 50 else Style())),
                (f"  {location(frame)}", DIM),
            ])
            nodes.append(node)
            if kids:
                stack.extend((c, depth + 1) for c in reversed(kids))
        self.row_nodes = nodes
        cursor = 0
        if self.selected is not None:
            try:
                cursor = nodes.index(self.selected)
            except ValueError:  # selected node filtered away or collapsed above it
                cursor = self._nearest_visible(self.selected)
        if nodes and (self.selected is None or cursor >= len(nodes) or
                      nodes[cursor] is not self.selected):
            self.selected = nodes[min(cursor, len(nodes) - 1)]
        elif not nodes:
            self.selected = None
        self.set_rows(rows, cursor)

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

    # -- actions ---------------------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        self.move_cursor(delta)

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
        self.post_message(SelectionChanged())

    def action_collapse_all(self) -> None:
        self.expanded.clear()
        if self.selected is not None:
            top = self.selected.path()
            self.selected = top[0] if top else None
        self.refresh_from_model()
        self.post_message(SelectionChanged())
