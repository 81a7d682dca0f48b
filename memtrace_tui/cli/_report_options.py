"""Arguments every reporter subcommand shares (kept import-light: argparse only)."""

from __future__ import annotations

import argparse


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE, --leaks / --peak, --show-internal."""
    parser.add_argument("file", help="capture file written by `memtrace run`")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--leaks", action="store_true",
                       help="only memory still allocated when the program ended")
    which.add_argument("--peak", action="store_true",
                       help="only memory allocated at the high-water mark")
    which.add_argument("--temporary", action="store_true",
                       help="only temporary allocations: freed by their thread before it made "
                       "more than N others (--temporary-threshold, default 1)")
    parser.add_argument("--temporary-threshold", type=temporary_threshold, default=1,
                        metavar="N", help="allocations a thread may make between a "
                        "temporary allocation and its free (default 1, as memray)")
    parser.add_argument("--show-internal", action="store_true",
                        help="keep CPython-internal, memtrace and extension allocator "
                        "frames in the stacks")
    parser.add_argument("--all-processes", action="store_true",
                        help="FILE and its traced children's captures (FILE.PID, from "
                        "--follow-fork) merged into one report, by frame")


def temporary_threshold(text: str) -> int:
    """argparse type of --temporary-threshold: 0 to 65535."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count of allocations (0 to "
                                         "65535)")
    return n


def load(args: argparse.Namespace):
    """The Profile these arguments ask for; warnings (stale libraries...) on stderr."""
    import sys

    from memtrace_core.report.profile import load_profile, selection_from_args
    from memtrace_tui.cli._progress import Progress

    with Progress("reading the capture") as progress:
        profile = load_profile(args.file, selection_from_args(args), args.show_internal,
                               progress=progress,
                               temporary_threshold=getattr(args, "temporary_threshold", 1),
                               all_processes=getattr(args, "all_processes", False))
    for line in profile.warnings():
        print(f"memtrace: warning: {line}", file=sys.stderr)
    return profile


def print_rich(renderable) -> None:
    """Print to stdout with the legend; colour only on a terminal (NO_COLOR respected)."""
    import sys

    from rich.console import Console

    from memtrace_tui.terminal_report import legend_text

    width = None if sys.stdout.isatty() else 240  # piped: no wrapping inside rows
    console = Console(highlight=False, width=width)
    console.print(renderable)
    console.print(legend_text())


def write_output(path: str, data: bytes) -> None:
    """Write a report file, or fail with one line; `-` is standard output."""
    import sys

    from memtrace_core.errors import UserError

    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None


def exit_status(args: argparse.Namespace, profile) -> int:
    """0, or 1 after a one-line error when the capture is corrupt part-way (the report
    above covers the records before the damage, like `stats`)."""
    import sys

    error = getattr(profile.reader, "error", None)
    if error:
        print(f"memtrace: error: {args.file}: {error} (the report covers the records "
              "before it)", file=sys.stderr)
        return 1
    return 0
