"""`memtrace tree FILE`: the call tree of top allocators (rich tree, or --json)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from memtrace_tui.cli._report_options import add_report_arguments

    p = subparsers.add_parser(
        "tree",
        help="call tree of the top allocators of a capture",
        description="The call tree of a capture, biggest branches first; branches under "
        "--threshold are folded into one line. Native captures are symbolized.",
    )
    add_report_arguments(p)
    p.add_argument("--threshold", default="1%", metavar="PCT|SIZE",
                   help="hide branches below this share (1%%, the default) or size (10KiB)")
    p.add_argument("--max-depth", type=int, default=0, metavar="N",
                   help="show at most N levels (0 = all)")
    p.add_argument("--json", action="store_true", help="print the tree as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from memtrace_core.report import deepjson, tree
    from memtrace_tui import terminal_report
    from memtrace_tui.cli._report_options import exit_status, load, print_rich

    profile = load(args)
    threshold = tree.parse_threshold(args.threshold, profile.total_bytes)
    if args.json:
        print(deepjson.dumps(tree.to_json(profile, threshold, args.max_depth), indent=1))
    else:
        print_rich(terminal_report.tree(profile, threshold, args.max_depth))
    return exit_status(args, profile)
