"""`memtrace top`'s data: one snapshot of a capture as read so far (the heap line and the
top locations by memory in use now), for plain-text logs and `--json` lines.

It uses the reports' own tree (profile.Profile over model.CallTree, names resolved in this
process) rebuilt for each snapshot, so its rows are `memtrace table --leaks`'s rows at that
moment of the stream.
"""

from __future__ import annotations

from memtrace_core.model.metrics import format_bytes
from memtrace_core.report.kinds import frame_json, short_location
from memtrace_core.report.profile import Profile, Selection
from memtrace_core.report.table import rows
from memtrace_core.sampling import ESTIMATE_MARK, describe


def snapshot(path: str, reader, tree, status: str, limit: int) -> dict:
    """The capture's state now: heap figures and the top `limit` locations in use."""
    selection = Selection.LEAKS
    if tree.metric != selection.metric:
        tree.set_metric(selection.metric)
    tree.rebuild()  # every stack recounted, and the figures of this same moment
    profile = Profile(path, reader, selection, tree, tree.native)
    header = reader.header or {}
    figures = tree.figures
    top = [r for r in rows(profile, "own") if r.own_bytes or r.own_count][:limit]
    return {
        "file": path,
        "pid": header.get("pid"),
        "status": status,
        "time_s": round(figures.last_time_us / 1e6, 3),
        "records": figures.records,
        "heap_bytes": figures.heap_bytes,
        "peak_bytes": figures.peak_bytes,
        "in_use_allocations": profile.total_count,
        "reserved_bytes": figures.reserved_bytes,  # address space set aside: not heap
        "sampled": profile.sample_bytes,
        "rows": [{**frame_json(r.frame), "bytes": r.own_bytes, "count": r.own_count}
                 for r in top],
        "_frames": [r.frame for r in top],
    }


def render_text(snap: dict) -> str:
    """Plain lines (no colour, no cursor movement): fit for logs and pipes."""
    est = f"{ESTIMATE_MARK} " if snap.get("sampled") else ""
    lines = [f"memtrace top  {snap['file']}  pid {snap['pid']}  {snap['status']}  "
             f"{snap['time_s']:.1f} s  heap {est}{format_bytes(snap['heap_bytes'])} "
             f"({est}{snap['heap_bytes']:,} B)  peak {est}{format_bytes(snap['peak_bytes'])}  "
             f"{est}{snap['in_use_allocations']:,} blocks in use"
             + (f"  ({describe(snap['sampled'])})" if snap.get("sampled") else "")
             + (f"  reserved {format_bytes(snap['reserved_bytes'])} (not heap)"
                if snap.get("reserved_bytes") else "")]
    lines.append(f"  {'in use':>10} {'count':>8}  {'kind':<5} function  location")
    for row, frame in zip(snap["rows"], snap["_frames"], strict=True):
        lines.append(f"  {format_bytes(row['bytes']):>10} {row['count']:>8,}  "
                     f"{frame.kind.mark:<5} {frame.function}  {short_location(frame)}")
    return "\n".join(lines)
