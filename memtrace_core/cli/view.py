"""`memtrace view FILE`: the live TUI over a capture file (the final state, peak included)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "view",
        help="browse a capture file in the terminal UI",
        description="Open a capture in the memtrace TUI: call tree of top allocators "
        "(in use at the end, peak, total allocated, count), top-locations table, threads.",
    )
    p.add_argument("file", help="capture file written by `memtrace run` or `live -o`")
    p.add_argument("--show-internal", action="store_true",
                   help="start with interpreter-internal frames shown (key i toggles)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from memtrace_core.errors import UserError
    from memtrace_core.model.build import session_for_capture

    session = session_for_capture(args.file, show_internal=args.show_internal)
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        session.tree.close()
        raise UserError("view needs a terminal (use `memtrace stats/table/tree` for text)")
    from memtrace_tui.app import MemtraceApp

    try:
        MemtraceApp(session).run()
    finally:
        session.tree.close()
    return 0
