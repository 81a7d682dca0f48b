"""Filter matching and highlighting shared by the tree and the table."""

from __future__ import annotations

from memtrace_core.frames import Frame
from memtrace_core.model import CallTree


def frame_matches(frame: Frame, needle: str) -> bool:
    """The model's filter rule: the function or the file contains the text (any case)."""
    if not needle:
        return False
    return needle in frame.function.lower() or needle in frame.file.lower()


def split_matches(text: str, needle: str, roles: str) -> list[tuple[str, str]]:
    """`text` as pieces, the occurrences of `needle` (any case) with the `match` role."""
    if not needle:
        return [(text, roles)]
    low = text.lower()
    out: list[tuple[str, str]] = []
    at = 0
    while True:
        hit = low.find(needle, at)
        if hit < 0:
            break
        if hit > at:
            out.append((text[at:hit], roles))
        out.append((text[hit:hit + len(needle)], f"{roles} match"))
        at = hit + len(needle)
    if at < len(text):
        out.append((text[at:], roles))
    return out


NOTHING = {"in use": "nothing in use", "peak": "nothing at the peak",
           "total allocated": "nothing allocated", "allocations": "no allocations",
           "temporary": "no temporary allocations",
           "growth": "nothing grew or shrank in the window",
           "since mark": "nothing changed since the mark",
           "in use at": "nothing in use at this instant"}


def empty_message(tree: CallTree) -> str:
    """Why the tree or the table has no rows: the filter matches nothing, or nothing counts
    in this metric (for this thread) yet."""
    if tree.filter:
        return f'no frame matches "{tree.filter}" (escape clears the filter)'
    who = "" if tree.thread is None else " in this thread"
    what = NOTHING.get(tree.metric.value, f"nothing for {tree.metric.value}")
    if tree.metric.value == "in use at":
        return f"{what}{who}"
    return f"{what}{who} yet"
