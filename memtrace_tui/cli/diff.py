"""`memtrace diff A B` / `memtrace diff FILE --from T1 --to T2`: what grew in memory in use."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "diff",
        help="change of memory in use between two captures or two instants of one",
        description="Per location (the frame that allocated; --tree: per call path), the "
        "change of memory in use from the first side to the second, largest growth first. "
        "Sides: two captures of the same program (each at its end unless --from/--to say "
        "otherwise), or one capture at two instants (--from and --to). An instant is a "
        "time since the start (12.5, 800ms, 2m) or start, peak or end.",
    )
    p.add_argument("first", metavar="A", help="capture file")
    p.add_argument("second", metavar="B", nargs="?",
                   help="second capture (default: A again, at --to)")
    p.add_argument("--from", dest="from_", metavar="T1", default=None,
                   help="instant of the first side (default: end with two captures, "
                   "start with one)")
    p.add_argument("--to", metavar="T2", default="end",
                   help="instant of the second side (default: end)")
    p.add_argument("--tree", action="store_true", help="per call path instead of location")
    p.add_argument("--all", action="store_true",
                   help="also list locations (paths) whose memory in use did not change")
    p.add_argument("-n", "--limit", type=int, default=25, metavar="N",
                   help="rows of the table (0 = all; default 25; --json lists all)")
    p.add_argument("--max-depth", type=int, default=0, metavar="N",
                   help="levels of the --tree output (0 = all)")
    p.add_argument("--show-internal", action="store_true",
                   help="keep CPython-internal, memtrace and extension allocator "
                        "frames in the stacks")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=run)


def _side(path: str, instant: int | str, show_internal: bool, progress):
    """(Profile or None for the start, note when the capture ended before the instant)."""
    from memtrace_core.report.profile import Selection, load_profile

    if instant == "start":
        return None, None
    if instant in ("end", "peak"):
        selection = Selection.PEAK if instant == "peak" else Selection.LEAKS
        return load_profile(path, selection, show_internal, progress=progress), None
    profile = load_profile(path, Selection.LEAKS, show_internal, at_us=instant)
    note = None
    if not profile.reader.stopped:
        note = (f"{path} ends at {profile.reader.last_time_us / 1e6:.3f} s, before "
                f"{instant / 1e6:.3f} s: its end is used")
    return profile, note


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from memtrace_core.errors import UserError
    from memtrace_core.model.metrics import format_bytes, format_signed
    from memtrace_core.report import diff
    from memtrace_tui import terminal_report
    from memtrace_tui.cli._progress import Progress
    from memtrace_tui.cli._report_options import print_rich

    second = args.second or args.first
    if args.second is None and args.from_ is None and args.to == "end":
        raise UserError("give a second capture, or instants of this one with --from/--to "
                        "(e.g. --from 10s --to end)")
    before_at = diff.parse_instant(args.from_ or ("end" if args.second else "start"), "--from")
    after_at = diff.parse_instant(args.to, "--to")
    if args.limit < 0 or args.max_depth < 0:
        raise UserError("--limit and --max-depth take 0 or a positive number")

    warnings: list[str] = []
    with Progress("reading the captures") as progress:
        before, note_b = _side(args.first, before_at, args.show_internal, progress)
        after, note_a = _side(second, after_at, args.show_internal, progress)
    warnings += [n for n in (note_b, note_a) if n]
    for profile in (before, after):
        if profile is not None:
            warnings += profile.warnings()
    if args.second is not None:
        headers = [p.reader.header for p in (before, after) if p is not None]
        if len(headers) == 2:
            warnings += diff.program_warnings(*headers)
    for line in dict.fromkeys(warnings):
        print(f"memtrace: warning: {line}", file=sys.stderr)

    total_b = before.total_bytes if before else 0
    total_a = after.total_bytes if after else 0
    count_b = before.total_count if before else 0
    count_a = after.total_count if after else 0
    title = (f"in use {diff.describe_instant(before_at, before)} of {args.first} → "
             f"{diff.describe_instant(after_at, after)} of {second}: "
             f"{format_bytes(total_b)} → {format_bytes(total_a)} "
             f"({format_signed(total_a - total_b)}, {diff.signed_count(count_a - count_b)} "
             f"allocations)")
    if args.tree:
        root = diff.path_changes(before, after)
        if args.json:
            print(json.dumps(diff.tree_json(root, args.all), indent=1))
        else:
            print_rich(terminal_report.diff_tree(root, title, args.max_depth))
    else:
        changes = diff.location_changes(before, after, args.all)
        if args.json:
            print(json.dumps(diff.table_json(changes), indent=1))
        else:
            from rich.console import Group
            from rich.text import Text

            print_rich(Group(Text(title, style="bold"), terminal_report.diff_table(changes,
                                                                          args.limit)))
    status = 0
    for path, profile in ((args.first, before), (second, after)):
        error = getattr(profile.reader, "error", None) if profile else None
        if error:
            print(f"memtrace: error: {path}: {error} (the diff covers the records before it)",
                  file=sys.stderr)
            status = 1
    return status
