"""speedscope's file format (https://www.speedscope.app/file-format-schema.json): two
"sampled" profiles over shared frames, one weighted by bytes, one by allocation count.

Each distinct call path is one sample, stack listed root first as the schema wants.
"""

from __future__ import annotations

from memtrace_core import __version__
from memtrace_core.frames import Frame, FrameKind
from memtrace_core.report.profile import Profile

SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def _frame_json(frame: Frame) -> dict:
    name = frame.function + (" [inlined]" if frame.kind is FrameKind.INLINE else "")
    out: dict = {"name": name}
    if frame.file:
        out["file"] = frame.file
        if frame.line:
            out["line"] = frame.line
    elif frame.module:
        out["file"] = frame.module
    return out


def to_json(profile: Profile) -> dict:
    """The speedscope document as a dict (json.dumps it)."""
    index: dict[Frame, int] = {}
    frames: list[dict] = []
    samples: list[list[int]] = []
    byte_weights: list[int] = []
    count_weights: list[int] = []
    for path, nbytes, ncount in profile.stacks():
        sample = []
        for frame in path:
            i = index.get(frame)
            if i is None:
                i = index[frame] = len(frames)
                frames.append(_frame_json(frame))
            sample.append(i)
        samples.append(sample)
        byte_weights.append(nbytes)
        count_weights.append(ncount)
    what = profile.selection.title
    argv = " ".join((profile.reader.header or {}).get("argv", [])[1:]) or profile.path

    def sampled(name: str, unit: str, weights: list[int]) -> dict:
        return {"type": "sampled", "name": name, "unit": unit, "startValue": 0,
                "endValue": sum(weights), "samples": samples, "weights": weights}

    return {
        "$schema": SCHEMA,
        "name": f"memtrace: {argv} ({what})",
        "exporter": f"memtrace {__version__}",
        "activeProfileIndex": 0,
        "shared": {"frames": frames},
        "profiles": [sampled(f"bytes {what}", "bytes", byte_weights),
                     sampled(f"allocations {what}", "none", count_weights)],
    }
