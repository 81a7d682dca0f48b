"""`memtrace export --format folded|speedscope|pprof FILE [-o OUT]`."""

from __future__ import annotations

import argparse

FORMATS = ("folded", "speedscope", "pprof")
SUFFIX = {"folded": ".folded", "speedscope": ".speedscope.json", "pprof": ".pb.gz"}


def register(subparsers: argparse._SubParsersAction) -> None:
    from memtrace_tui.cli._report_options import add_report_arguments

    p = subparsers.add_parser(
        "export",
        help="export a capture as folded stacks, speedscope JSON or pprof",
        description="Export a capture's call paths: folded stacks (flamegraph.pl, inferno), "
        "speedscope JSON, or pprof (gzip protobuf for `go tool pprof`, Pyroscope).",
    )
    p.add_argument("--format", choices=FORMATS, required=True, help="output format")
    add_report_arguments(p)
    p.add_argument("-o", "--output", metavar="OUT",
                   help="file to write (`-` = stdout; default: stdout for folded, "
                   "CAPTURE.speedscope.json / CAPTURE.pb.gz here for the others)")
    p.add_argument("--count", action="store_true",
                   help="folded: weight stacks by allocation count instead of bytes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import sys

    from memtrace_tui.cli._report_options import exit_status, load, write_output

    profile = load(args)
    if args.format == "folded":
        from memtrace_core.report import export_folded

        data = export_folded.render(profile, count=args.count).encode()
    elif args.format == "speedscope":
        from memtrace_core.report import export_speedscope

        data = json.dumps(export_speedscope.to_json(profile), separators=(",", ":")).encode()
    else:
        from memtrace_core.report import export_pprof

        data = export_pprof.render(profile)
    output = args.output
    if output is None:
        if args.format == "folded":
            output = "-"
        else:
            output = os.path.splitext(os.path.basename(args.file))[0] + SUFFIX[args.format]
    write_output(output, data)
    if output != "-":
        print(f"memtrace: wrote {output}", file=sys.stderr)
    return exit_status(args, profile)
