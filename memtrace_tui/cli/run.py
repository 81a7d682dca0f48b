"""`memtrace run`: run a program under the tracer and record a capture file."""

from __future__ import annotations

import argparse
import os
import sys

from memtrace_core.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `run` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="run a program and record its allocations to a capture file",
        description="Run a Python program under the tracer and record a capture file. "
        "The program keeps its arguments, input, output and exit status.",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="capture file to write")
    parser.add_argument("-f", "--force", action="store_true", help="overwrite the output file")
    parser.add_argument(
        "--follow-fork", action="store_true",
        help="also trace forked child processes (os.fork, multiprocessing fork workers), "
        "each into FILE.PID",
    )
    add_no_names(parser)
    from memtrace_tui.cli._program_options import add_program_arguments

    add_program_arguments(parser)
    # the collector stays paused until the program starts (memtrace_core/tracer/collector.py)
    parser.set_defaults(func=run, starts_program=True)


def add_no_names(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-names", action="store_true",
        help="with --native: do not store the native frames' names in the capture when it "
             "is finished (`memtrace symbolize FILE` can add them later, on this machine)",
    )


def name_at_exit(path: str) -> None:
    """Name the capture's native frames once this process has run the program and stopped
    tracing (registered before the tracer's own exit handler, so it runs after it); never
    in a forked child, which inherits the handler."""
    import atexit

    pid = os.getpid()

    def name() -> None:
        if os.getpid() == pid:
            from memtrace_core.tracer import _tracer
            from memtrace_tui.cli._progress import name_capture

            # The tracer that wrote the capture ran here: its tables say which addresses to
            # name, so the capture is not read back (None: it must be).
            name_capture(path, known=_tracer.native_summary())

    atexit.register(name)


def default_output(program_name: str) -> str:
    """`memtrace-<script>.<pid>.mtrace` in the current directory."""
    return f"memtrace-{program_name}.{os.getpid()}.mtrace"


def open_output(path: str, force: bool) -> int:
    """Open the capture file for writing; refuse to overwrite without --force."""
    from memtrace_core.capture import take_writer_lock  # before the file exists: the lock
    # follows its creation at once (a follower gives an unlocked empty file a moment only)

    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        raise UserError(f"output file {path} exists; use --force to overwrite it") from None
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None
    take_writer_lock(fd)  # `view --follow` tells a live writer from a dead one by it
    return fd


def run(args: argparse.Namespace) -> int:
    """Trace the program in this process; never returns normally (SystemExit)."""
    from memtrace_core.tracer import runner
    from memtrace_tui.cli._program_options import program_from_args

    program = program_from_args(args)
    program.check()
    output = args.output
    if output is None:
        output = default_output(program.name)
        print(f"memtrace: writing capture to {output}", file=sys.stderr)
    fd = open_output(output, args.force)
    if args.native and not args.no_names:
        name_at_exit(output)
    if args.follow_fork:
        import atexit

        # registered before the tracer's own handler: runs after it, once all is written
        atexit.register(_say_child_captures, output, os.getpid())
    runner.run(program, fd, args.native, args.trace_python_allocators, compress=True,
               follow_output=output if args.follow_fork else None, sample_bytes=args.sample,
               arrow_system_pool=args.arrow_system_pool)
    return 0


def _say_child_captures(output: str, parent: int) -> None:
    """One line on stderr naming the children's captures (in the parent only)."""
    if os.getpid() != parent:
        return
    from memtrace_core.tracer.children import child_captures, wait_for_exec_children

    wait_for_exec_children(output)
    found = child_captures(output)
    if found:
        print(f"memtrace: {len(found)} child process capture{'s' if len(found) > 1 else ''}: "
              f"{', '.join(found)}", file=sys.stderr)
