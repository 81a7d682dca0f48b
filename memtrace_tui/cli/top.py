"""`memtrace top FILE` / `memtrace top --follow FILE`: the heap line and the top locations
by memory in use, as plain text (or one JSON object per line with --json) every few seconds:
for logs, CI and terminals without a TTY. Without --follow, one snapshot of the whole file."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "top",
        help="print the top locations in use, once or every few seconds (plain text/JSON)",
        description="Print the heap line and the top locations by memory in use now. With "
        "--follow, read a capture that is still being written and print every INTERVAL "
        "seconds until its program ends.",
    )
    p.add_argument("file", help="capture file (being written, with --follow)")
    p.add_argument("--follow", action="store_true",
                   help="keep reading the capture as it grows; print every INTERVAL seconds")
    p.add_argument("-n", "--limit", type=int, default=10, metavar="N",
                   help="locations per snapshot (default 10)")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="seconds between snapshots with --follow (default 2)")
    p.add_argument("--json", action="store_true", help="one JSON object per snapshot")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from memtrace_core.errors import UserError
    from memtrace_core.model.build import call_tree
    from memtrace_core.report.top import render_text, snapshot

    if args.interval <= 0:
        raise UserError("--interval must be positive")
    if args.limit <= 0:
        raise UserError("-n must be positive")

    def emit(snap: dict) -> None:
        if args.json:
            print(json.dumps({k: v for k, v in snap.items() if not k.startswith("_")}),
                  flush=True)
        else:
            print(render_text(snap) + "\n", flush=True)

    if not args.follow:
        from memtrace_core.capture import writer_alive
        from memtrace_core.reader import read_capture, read_names

        reader = read_capture(args.file)
        tree = call_tree(reader, names="sync", embedded=read_names(args.file))
        try:
            with open(args.file, "rb") as f:
                writing = writer_alive(f.fileno())
            status = _status(reader, writer_gone=not writing)
            emit(snapshot(args.file, reader, tree, status, args.limit))
        finally:
            tree.close()
        return 0

    from memtrace_core.reader import StreamReader
    from memtrace_core.reader.follow import CaptureFollower

    follower = CaptureFollower(args.file)
    reader = StreamReader()
    tree = None
    try:
        next_at = time.monotonic() + args.interval
        ended = False
        last: tuple[int, str] | None = None  # what was printed last: never twice the same
        while not ended:
            data = follower.read()
            if data:
                reader.feed(data)
            elif reader.complete or follower.frame_ended:
                ended = True
            elif not follower.writer_alive():
                data = follower.read()
                if data:
                    reader.feed(data)
                else:
                    ended = True
            if tree is None and reader.header:
                tree = call_tree(reader, names="sync")
            if ended or time.monotonic() >= next_at:
                status = _status(reader, writer_gone=ended)
                if tree is not None and (reader.records, status) != last:
                    emit(snapshot(args.file, reader, tree, status, args.limit))
                    last = (reader.records, status)
                next_at = time.monotonic() + args.interval
            if not data and not ended:
                time.sleep(0.05)
        if tree is None:
            raise UserError(f"{args.file}: the stream ended before its header")
    finally:
        follower.close()
        if tree is not None:
            tree.close()
    return 0


def _status(reader, writer_gone: bool) -> str:
    if reader.complete:
        code = (reader.trailer or {}).get("exit_code")
        if code is not None and code < 0:
            return f"killed by signal {-code}"
        return "exited" + (f" with status {code}" if code is not None else "")
    return "incomplete" if writer_gone else "running"
