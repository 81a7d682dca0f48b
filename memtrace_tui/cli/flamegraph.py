"""`memtrace flamegraph FILE [-o out.html]`: a self-contained HTML flame graph."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from memtrace_tui.cli._report_options import add_report_arguments

    p = subparsers.add_parser(
        "flamegraph",
        help="write an HTML flame graph of a capture",
        description="Write a self-contained HTML flame graph (no network access needed): "
        "Python, native and inlined frames in distinct colours, hover for file:line and "
        "bytes, click to zoom, search box.",
    )
    add_report_arguments(p)
    p.add_argument("-o", "--output", metavar="FILE",
                   help="HTML file to write (default: CAPTURE-flamegraph.html here)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from memtrace_core.report import flamegraph
    from memtrace_tui.cli._report_options import exit_status, load, write_output

    profile = load(args)
    output = args.output or (
        os.path.splitext(os.path.basename(args.file))[0] + "-flamegraph.html")
    write_output(output, flamegraph.render(profile).encode())
    print(f"memtrace: wrote {output}", file=sys.stderr)
    return exit_status(args, profile)
