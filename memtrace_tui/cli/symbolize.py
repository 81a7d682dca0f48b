"""`memtrace symbolize FILE`: add the names of every native frame to an existing capture
(made with --no-names, by an older memtrace, or cut off mid-run), in place and atomically,
so it opens fully named on any machine. Run it where the program ran."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "symbolize",
        help="store the native frames' names in a capture, so it opens named anywhere",
        description="Name every native address a capture uses with this machine's "
        "libraries (and their debug files), and store the names in the capture (replacing "
        "any earlier ones). Run it on the machine that ran the program.",
    )
    p.add_argument("file", help="capture file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from memtrace_core.reader import read_capture
    from memtrace_core.symbols.embed import embed
    from memtrace_tui.cli._progress import Progress

    with Progress("reading") as progress:
        reader = read_capture(args.file, progress=progress)
    if not (reader.header or {}).get("native"):
        print(f"memtrace: {args.file} has no native stacks (recorded without --native): "
              f"nothing to name", file=sys.stderr)
        return 0
    with Progress("naming native frames") as progress:
        named = embed(args.file, progress=progress)
    stale = _stale_note(args.file)
    print(f"memtrace: named {named:,} native addresses in {args.file}{stale}", file=sys.stderr)
    return 0


def _stale_note(path: str) -> str:
    """Say so when some libraries had changed: their frames are stored unnamed."""
    from memtrace_core.reader import read_names

    names = read_names(path)
    if names is None:
        return ""
    changed = sorted({f.module or f.function for frames in names.frames.values()
                      for f in frames if f.function.startswith("<library changed")})
    if not changed:
        return ""
    return (f" ({len(changed)} librar{'y' if len(changed) == 1 else 'ies'} changed since the "
            f"capture: their frames stay unnamed)")
