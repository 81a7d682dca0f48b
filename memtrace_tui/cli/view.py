"""`memtrace view FILE`: the live TUI over a capture file (the final state, peak included);
`memtrace view --follow FILE` over a capture that is still being written."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from memtrace_tui.cli._leak_options import add_leak_options

    p = subparsers.add_parser(
        "view",
        help="browse a capture file in the terminal UI",
        description="Open a capture in the memtrace TUI: call tree of top allocators "
        "(in use at the end, peak, total allocated, count), top-locations table, threads.",
    )
    p.add_argument("file", help="capture file written by `memtrace run` or `live -o`")
    p.add_argument("--follow", action="store_true",
                   help="the capture is still being written (run -o, live -o, attach -o, "
                        "live --background): keep reading as it grows, as live does")
    add_leak_options(p)
    p.add_argument("--show-internal", action="store_true",
                   help="start with interpreter-internal frames shown (key i toggles)")
    p.add_argument("--all-processes", action="store_true",
                   help="FILE and its traced children's captures (FILE.PID, from "
                        "--follow-fork) merged into one tree, by frame (with --follow: "
                        "followed as they are written, children as they start)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from memtrace_core.errors import UserError
    from memtrace_core.model.build import session_for_capture

    if args.follow:
        return _follow(args)
    from memtrace_tui.cli._progress import Progress

    terminal = sys.stdout.isatty() and sys.stdin.isatty()
    importing = _import_app_meanwhile() if terminal else None
    with Progress("reading the capture") as progress:
        session = session_for_capture(args.file, show_internal=args.show_internal,
                                      progress=progress,
                                      temporary_threshold=args.temporary_threshold,
                                      window_s=args.window,
                                      all_processes=args.all_processes,
                                      share_cpu=importing is not None)
    if not terminal:
        session.tree.close()
        raise UserError("view needs a terminal (use `memtrace stats/table/tree` for text)")
    importing.join()
    from memtrace_tui.app import MemtraceApp

    try:
        MemtraceApp(session).run()
    finally:
        session.tree.close()
    return 0


def _import_app_meanwhile():
    """Import the UI (Textual: a fifth of a second of CPU) on a thread while the capture
    is read on this one, which leaves the GIL to it while it decodes."""
    import threading

    def load() -> None:
        try:
            import memtrace_tui.app  # noqa: F401
        except Exception:  # noqa: BLE001 - imported again (and the error shown) later
            pass

    thread = threading.Thread(target=load, name="memtrace-import-ui", daemon=True)
    thread.start()
    return thread


def _follow(args: argparse.Namespace) -> int:
    import sys
    import time

    from memtrace_core.errors import UserError
    from memtrace_core.model.build import call_tree
    from memtrace_core.model.session import Session
    from memtrace_core.reader import StreamReader
    from memtrace_core.reader.follow import CaptureFollower

    if not sys.stdout.isatty() or not sys.stdin.isatty():
        raise UserError("view needs a terminal (use `memtrace top --follow FILE` for text)")
    if args.all_processes:  # the program's capture and its children's, as they appear
        from memtrace_core.model.processes import MergedReader, ProcessesFollower
        from memtrace_core.reader import new_reader

        follower = ProcessesFollower(args.file)
        reader = MergedReader([new_reader(args.temporary_threshold)], [args.file],
                              args.temporary_threshold)
    else:
        follower = CaptureFollower(args.file)
        reader = StreamReader()
        reader.set_temporary_threshold(args.temporary_threshold)
    deadline = time.monotonic() + 10
    try:
        while not reader.header:  # the header says what the tree needs (native or not)
            data = follower.read()
            if data:
                reader.feed(data)
                continue
            if time.monotonic() > deadline or not follower.writer_alive():
                raise UserError(f"{args.file}: no header yet: not a capture being written")
            time.sleep(0.05)
    except BaseException:
        follower.close()
        raise
    tree = call_tree(reader)
    tree.set_window(args.window)
    if args.show_internal:
        tree.core.set_show_internal(True)
    session = Session(reader, tree, live=True)
    session.started = float(reader.header.get("start_time") or session.started)
    from memtrace_tui.app import MemtraceApp
    from memtrace_tui.follow_controller import FollowController

    controller = FollowController(follower, session)
    try:
        MemtraceApp(session, controller).run()
    finally:
        if controller.feed is not None:
            controller.feed.stop()
            controller.feed.eof.wait(timeout=3)
        else:
            follower.close()
        tree.close()
    return 0
