"""Folded stacks: `frame;frame;frame bytes`, one line per distinct call path.

The input format of flamegraph.pl, inferno and speedscope. Frames read
`function (file:line)`, outermost first; inlined frames end with `_[i]`, flamegraph.pl's
inline annotation (which it colours apart).
"""

from __future__ import annotations

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.report.profile import Profile

INLINE_SUFFIX = "_[i]"


def folded_frame(frame: Frame) -> str:
    """One frame as a folded-stack field (no `;` or newline inside)."""
    text = frame.label().replace(";", ",").replace("\n", " ")
    return text + INLINE_SUFFIX if frame.kind is FrameKind.INLINE else text


def render(profile: Profile, count: bool = False) -> str:
    """Every call path with its bytes (or allocation count), biggest branches first."""
    lines = []
    for frames, nbytes, ncount in profile.stacks():
        value = ncount if count else nbytes
        if value:
            lines.append(f"{';'.join(folded_frame(f) for f in frames)} {value}")
    return "\n".join(lines) + ("\n" if lines else "")
