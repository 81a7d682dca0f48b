"""`memtrace tree`: the call tree of top allocators, biggest branches first.

Branches under a threshold (a percentage of the selection's bytes, or a size) are folded
into one `… N smaller branches` line, so the numbers shown still add up.
"""

from __future__ import annotations

from memtrace_core.errors import UserError
from memtrace_core.report.kinds import frame_json
from memtrace_core.report.profile import NO_STACK, Profile
from memtrace_core.report.profile import Branch as Node
from memtrace_core.sizes import parse_size


def parse_threshold(text: str, total_bytes: int) -> int:
    """`1%` of the total, or a size (`4096`, `10KiB`, `2MB`), as bytes."""
    text = text.strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 <= pct <= 100:
                raise ValueError
            return int(total_bytes * pct / 100.0)
        return parse_size(text)
    except ValueError:
        raise UserError(f"bad --threshold {text!r}: use a percentage (1%) or a size "
                        "(4096, 10KiB, 2MB)") from None


def shown_hidden(profile: Profile, node: Node, threshold: int) -> tuple[list[Node], list[Node]]:
    shown, hidden = [], []
    for k in profile.children(node):
        (shown if k.bytes >= threshold and k.bytes > 0 else hidden).append(k)
    return shown, hidden


def to_json(profile: Profile, threshold: int = 0, max_depth: int = 0) -> dict:
    """Nested JSON: every node with bytes, count, children and what was folded away.
    Built without recursion: native stacks may be thousands of frames deep."""
    def children_json(node: Node, depth: int, out: dict) -> list[tuple[Node, int, dict]]:
        shown, hidden = shown_hidden(profile, node, threshold)
        if max_depth and depth >= max_depth:
            shown, hidden = [], shown + hidden
        todo = []
        out["children"] = []
        for k in shown:
            child = {**frame_json(k.frame), "bytes": k.bytes, "count": k.count,
                     "own_bytes": k.own_bytes, "own_count": k.own_count}
            out["children"].append(child)
            todo.append((k, depth + 1, child))
        if hidden:
            out["hidden"] = {"branches": len(hidden), "bytes": sum(k.bytes for k in hidden),
                             "count": sum(k.count for k in hidden)}
        return todo

    root = profile.root
    body: dict = {}
    todo = children_json(root, 0, body)
    while todo:
        todo.extend(children_json(*todo.pop()))
    if root.own_bytes or root.own_count:
        body["children"].append({**frame_json(NO_STACK), "bytes": root.own_bytes,
                                 "count": root.own_count, "own_bytes": root.own_bytes,
                                 "own_count": root.own_count, "children": []})
    return {"file": profile.path, "selection": profile.selection.value,
            "native": profile.native, "total_bytes": profile.total_bytes,
            "total_allocations": profile.total_count, "threshold_bytes": threshold,
            "sampled": profile.sample_bytes,
            "stale_libraries": profile.stale_libraries, **body}


