"""The terminal reports' rich renderings (`memtrace tree`, `table`, `diff`): the data and
its JSON come from memtrace_core.report; only the look is here."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.report.diff import Change, PathNode, signed_count
from memtrace_core.report.kinds import KIND_COLOURS, KIND_LABELS, short_location
from memtrace_core.report.profile import NO_STACK, Profile
from memtrace_core.report.profile import Branch as Node
from memtrace_core.report.table import rows as table_rows
from memtrace_core.report.tree import shown_hidden
from memtrace_core.sizes import format_bytes, format_signed


def legend_text():
    """A rich Text line: each kind's mark and name in its colour."""
    text = Text("frames: ")
    for kind in FrameKind:
        text.append(f"{kind.mark} {KIND_LABELS[kind]}", style=KIND_COLOURS[kind])
        text.append("  ")
    return text


def frame_text(frame: Frame, with_location: bool = True):
    """`[c] mt_leaf  mtext.c:45` as rich Text in the kind's colour."""
    text = Text(f"{frame.kind.mark} ", style=KIND_COLOURS[frame.kind])
    text.append(frame.function, style=f"bold {KIND_COLOURS[frame.kind]}")
    if with_location:
        where = short_location(frame)
        if where:
            text.append(f"  {where}", style="dim")
    return text


def tree(profile: Profile, threshold: int = 0, max_depth: int = 0):
    """A rich Tree; each line `bytes (share) count [kind] function  file:line`."""
    total = profile.total_bytes or 1

    def label(nbytes: int, count: int, body: Text) -> Text:
        head = Text(f"{format_bytes(nbytes):>10} {100.0 * nbytes / total:5.1f}% "
                    f"{count:>8,}  ", style="bold")
        head.append_text(body)
        return head

    est = profile.approx
    title = Text(f"{profile.selection.title}: {est}{format_bytes(profile.total_bytes)} in "
                 f"{est}{profile.total_count:,} allocations{profile.sampling_note}",
                 style="bold")
    out = Tree(title, guide_style="dim")
    todo: list[tuple[Node, Tree, int]] = [(profile.root, out, 0)]
    while todo:
        node, branch, depth = todo.pop()
        shown, hidden = shown_hidden(profile, node, threshold)
        if max_depth and depth >= max_depth:
            shown, hidden = [], shown + hidden
        pending = []
        for kid in shown:
            sub = branch.add(label(kid.bytes, kid.count, frame_text(kid.frame)))
            pending.append((kid, sub, depth + 1))
        if hidden:
            nb = sum(k.bytes for k in hidden)
            nc = sum(k.count for k in hidden)
            branch.add(label(nb, nc, Text(f"… {len(hidden)} smaller branch"
                                          f"{'es' if len(hidden) > 1 else ''}",
                                          style="dim italic")))
        todo.extend(reversed(pending))
    root = profile.root
    if root.own_bytes or root.own_count:
        out.add(label(root.own_bytes, root.own_count, frame_text(NO_STACK)))
    return out


def table(profile: Profile, sort: str = "own", limit: int = 25):
    """A rich Table of the top locations."""
    rows = table_rows(profile, sort)
    total = profile.total_bytes or 1
    est = profile.approx
    title = (f"top locations: {profile.selection.title} — "
             f"{est}{format_bytes(profile.total_bytes)} in {est}{profile.total_count:,} "
             f"allocations{profile.sampling_note}")
    out = Table(title=title, title_justify="left", header_style="bold",
                caption=f"sorted by {sort}; {len(rows)} locations", caption_justify="left")
    out.add_column("own", justify="right")
    out.add_column("own %", justify="right")
    out.add_column("total", justify="right")
    out.add_column("count", justify="right")
    out.add_column("kind")
    out.add_column("function", overflow="fold")
    out.add_column("location", overflow="fold", style="dim")
    for r in rows[:limit] if limit > 0 else rows:
        colour = KIND_COLOURS[r.frame.kind]
        out.add_row(format_bytes(r.own_bytes), f"{100.0 * r.own_bytes / total:.1f}%",
                    format_bytes(r.total_bytes), f"{r.own_count:,}",
                    Text(r.frame.kind.mark, style=colour),
                    Text(r.frame.function, style=colour), short_location(r.frame))
    return out


def diff_table(changes: list[Change], limit: int = 25):
    """A rich Table: change, count change, before → after, kind, function, location."""
    out = Table(header_style="bold",
                caption=f"largest growth first; {len(changes)} location"
                f"{'' if len(changes) == 1 else 's'} listed",
                caption_justify="left")
    out.add_column("change", justify="right")
    out.add_column("count", justify="right")
    out.add_column("before", justify="right", style="dim")
    out.add_column("after", justify="right")
    out.add_column("kind")
    out.add_column("function", overflow="fold")
    out.add_column("location", overflow="fold", style="dim")
    for c in changes[:limit] if limit > 0 else changes:
        colour = KIND_COLOURS[c.frame.kind]
        style = "bold red" if c.delta_bytes > 0 else "green" if c.delta_bytes < 0 else ""
        out.add_row(Text(format_signed(c.delta_bytes), style=style), signed_count(c.delta_count),
                    format_bytes(c.before_bytes), format_bytes(c.after_bytes),
                    Text(c.frame.kind.mark, style=colour), Text(c.frame.function, style=colour),
                    short_location(c.frame))
    return out


def diff_tree(root: PathNode, title: str, max_depth: int = 0):
    """A rich Tree of the changed call paths; each line `change count  before → after
    [kind] function  file:line`."""
    out = Tree(Text(title, style="bold"), guide_style="dim")
    todo: list[tuple[PathNode, Tree, int]] = [(root, out, 0)]
    while todo:
        node, branch, depth = todo.pop()
        if max_depth and depth >= max_depth:
            continue
        pending = []
        for kid in node.ordered():
            style = "bold red" if kid.delta_bytes > 0 else "green" if kid.delta_bytes < 0 else ""
            line = Text(f"{format_signed(kid.delta_bytes):>11} "
                        f"{signed_count(kid.delta_count):>9}  ", style=style)
            line.append(f"{format_bytes(kid.before_bytes)} → {format_bytes(kid.after_bytes)}  ",
                        style="dim")
            line.append_text(frame_text(kid.frame))
            pending.append((kid, branch.add(line), depth + 1))
        todo.extend(reversed(pending))
    return out
