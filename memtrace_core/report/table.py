"""`memtrace table`: top allocating locations, one row per frame.

Own = memory allocated by stacks ending at that frame, total = stacks passing through it
(a recursive frame counts a stack once).
"""

from __future__ import annotations

from memtrace_core.model.metrics import LOCATION_SORTS
from memtrace_core.report.kinds import frame_json
from memtrace_core.report.profile import Location, Profile

SORTS = LOCATION_SORTS


def rows(profile: Profile, sort: str = "own") -> list[Location]:
    """Every location with something selected, sorted by own bytes, total bytes or count."""
    out = profile.locations()
    if sort == "total":
        key = lambda r: (-r.total_bytes, -r.own_bytes, -r.total_count)  # noqa: E731
    elif sort == "count":
        key = lambda r: (-r.own_count, -r.own_bytes, -r.total_count)  # noqa: E731
    else:
        key = lambda r: (-r.own_bytes, -r.total_bytes, -r.own_count)  # noqa: E731
    out.sort(key=lambda r: (*key(r), r.frame.function, r.frame.file, r.frame.line))
    return out


def to_json(profile: Profile, sort: str = "own", limit: int = 0) -> dict:
    """The table as one JSON object; totals cover every row, shown or not."""
    table = rows(profile, sort)
    shown = table[:limit] if limit > 0 else table
    return {
        "file": profile.path,
        "selection": profile.selection.value,
        "native": profile.native,
        "sort": sort,
        "total_bytes": profile.total_bytes,
        "total_allocations": profile.total_count,
        "sampled": profile.sample_bytes,
        "locations": len(table),
        "stale_libraries": profile.stale_libraries,
        "rows": [{**frame_json(r.frame), "own_bytes": r.own_bytes, "own_count": r.own_count,
                  "total_bytes": r.total_bytes, "total_count": r.total_count}
                 for r in shown],
    }


