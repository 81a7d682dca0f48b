"""`memtrace flamegraph`: a self-contained HTML flame graph (no network fetches).

The call tree goes into the page as JSON; the page's script lays it out, colours frames
by kind (with a legend), shows file:line and bytes on hover, zooms on click and
highlights search matches.
"""

from __future__ import annotations

import html
import re

from memtrace_core.frames import FrameKind
from memtrace_core.model.metrics import format_bytes
from memtrace_core.report import deepjson
from memtrace_core.report.flamegraph_html import TEMPLATE
from memtrace_core.report.kinds import KIND_COLOURS, KIND_LABELS, short_location
from memtrace_core.report.profile import NO_STACK, Profile
from memtrace_core.report.profile import Branch as Node

_PLACEHOLDER = re.compile(r"__(?:TITLE|SUBTITLE|WARNINGS|DATA)__")


def tree_data(profile: Profile) -> dict:
    """The call tree as the page's nested JSON (root first, children biggest first).
    Built without recursion: native stacks may be thousands of frames deep."""
    def node_data(node: Node) -> dict:
        f = node.frame
        return {"n": f.function, "f": _where(f), "k": f.kind.value, "m": f.module,
                "v": node.bytes, "c": node.count}

    root = profile.root
    out = {"n": "all", "f": "", "k": FrameKind.UNRESOLVED.value, "m": "",
           "v": root.bytes, "c": root.count, "ch": []}
    todo = [(root, out)]
    while todo:
        node, data = todo.pop()
        kids = profile.children(node)
        if kids:
            data["ch"] = [node_data(k) for k in kids]
            todo.extend(zip(kids, data["ch"], strict=True))
    if root.own_bytes or root.own_count:
        out.setdefault("ch", []).append({"n": NO_STACK.function, "f": "",
                                         "k": NO_STACK.kind.value, "m": "",
                                         "v": root.own_bytes, "c": root.own_count})
    return out


def _where(frame) -> str:
    if frame.file:
        return f"{frame.file}:{frame.line}" if frame.line else frame.file
    return short_location(frame)


def render(profile: Profile) -> str:
    """The whole HTML page."""
    data = {
        "tree": tree_data(profile),
        "colours": {k.value: c for k, c in KIND_COLOURS.items()},
        "labels": {k.value: label for k, label in KIND_LABELS.items()},
        "marks": {k.value: k.mark for k in FrameKind},
        "selection": profile.selection.value,
        "stale_libraries": profile.stale_libraries,
    }
    # JSON inside <script>: "</" must not close the element
    payload = deepjson.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    argv = " ".join((profile.reader.header or {}).get("argv", [])[1:]) or profile.path
    title = f"memtrace flame graph: {argv}"
    est = profile.approx
    subtitle = (f"{profile.selection.title}: {est}{format_bytes(profile.total_bytes)} "
                f"({est}{profile.total_bytes:,} bytes) in {est}{profile.total_count:,} "
                f"allocations{profile.sampling_note}"
                f"{' — Python and native frames' if profile.native else ''}")
    warnings = "".join(f'<div class="warn">{html.escape(w)}</div>'
                       for w in profile.warnings())
    fills = {"__TITLE__": html.escape(title), "__SUBTITLE__": html.escape(subtitle),
             "__WARNINGS__": warnings, "__DATA__": payload}
    return _PLACEHOLDER.sub(lambda m: fills[m.group(0)], TEMPLATE)
