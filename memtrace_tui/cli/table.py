"""`memtrace table FILE`: top allocating locations (rich table, or --json)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from memtrace_core.model.metrics import LOCATION_SORTS
    from memtrace_tui.cli._report_options import add_report_arguments

    p = subparsers.add_parser(
        "table",
        help="top allocating locations of a capture",
        description="Top allocating locations (Python, native and inlined frames), sorted by "
        "own bytes, total bytes or allocation count. Native captures are symbolized.",
    )
    add_report_arguments(p)
    p.add_argument("--sort", choices=LOCATION_SORTS, default="own",
                   help="own bytes (default), total bytes through the frame, or count")
    p.add_argument("-n", "--limit", type=int, default=25, metavar="N",
                   help="rows to show (0 = all; default 25)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from memtrace_core.report import table
    from memtrace_tui import terminal_report
    from memtrace_tui.cli._report_options import exit_status, load, print_rich

    profile = load(args)
    if args.json:
        print(json.dumps(table.to_json(profile, args.sort, args.limit), indent=1))
    else:
        print_rich(terminal_report.table(profile, args.sort, args.limit))
    return exit_status(args, profile)
