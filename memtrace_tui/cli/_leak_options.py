"""Options of the leak-hunting metrics that `live`, `live --attach` and `view` share (the
growth metric's window and the temporary allocations' threshold), and the one assembly of
a live session they apply to."""

from __future__ import annotations

import argparse


def add_leak_options(parser: argparse.ArgumentParser) -> None:
    from memtrace_core.model.calltree import GROWTH_WINDOW_S
    from memtrace_tui.cli._report_options import temporary_threshold

    parser.add_argument("--window", type=_seconds, default=GROWTH_WINDOW_S, metavar="SECONDS",
                        help="the growth metric's sliding window (default "
                        f"{GROWTH_WINDOW_S:g} s)")
    parser.add_argument("--temporary-threshold", type=temporary_threshold, default=1,
                        metavar="N", help="a temporary allocation is freed by its thread "
                        "before it made more than N others (default 1, as memray)")


def _seconds(text: str) -> float:
    try:
        value = float(text.rstrip("s"))
    except ValueError:
        value = -1.0
    if not 0.1 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a window in seconds (0.1 to 86400)")
    return value


def configure(reader, tree, args: argparse.Namespace) -> None:
    """Apply the options to a fresh reader (before it reads an allocation) and its tree."""
    reader.set_temporary_threshold(getattr(args, "temporary_threshold", 1))
    tree.set_window(getattr(args, "window", 10.0))
    tree.record_timeline()  # the time cursor works in `live` too


def live_session(args: argparse.Namespace, native: bool):
    """The session of a live view, of a program memtrace runs or of an attached process: a
    fresh reader and its tree, set up by these options."""
    from memtrace_core.model.build import call_tree
    from memtrace_core.model.session import Session
    from memtrace_core.reader import StreamReader

    reader = StreamReader()
    tree = call_tree(reader, native=native)
    configure(reader, tree, args)
    return Session(reader, tree, live=True)
