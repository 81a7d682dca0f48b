"""Filter matching and highlighting shared by the tree and the table."""

from __future__ import annotations

from memtrace_core.frames import Frame


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
