"""`memtrace attach PID [--native] -o FILE --duration SECONDS`: trace a running Python process
for a while into a capture file and detach, leaving it running. Also the glue behind
`memtrace live --attach PID` (`run_live`), which shows the same stream in the TUI."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
from typing import Any

from memtrace_core.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `attach` subcommand."""
    parser = subparsers.add_parser(
        "attach",
        help="trace a running Python process for a while into a capture file",
        description="Attach to a running CPython process (same version as memtrace's) with "
        "memtrace's own ptrace injector, record its allocations from now on into a capture "
        "file, then detach: the process runs on untraced. Allocations made before attaching "
        "are unknown.",
    )
    parser.add_argument("pid", type=int, metavar="PID", help="the process to trace")
    parser.add_argument("--stop", action="store_true",
                        help="ask the `memtrace attach` that traces PID (in another terminal, "
                             "or left running after its terminal closed) to detach")
    add_attach_options(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="capture file to write")
    parser.add_argument("-f", "--force", action="store_true", help="overwrite the output file")
    from memtrace_tui.cli.run import add_no_names

    add_no_names(parser)
    parser.add_argument(
        "--duration", type=float, metavar="SECONDS",
        help="detach after this long (default: when interrupted with Ctrl-C)",
    )
    parser.set_defaults(func=run)


def add_attach_options(parser: argparse.ArgumentParser) -> None:
    """--native and --trace-python-allocators, as for `run`, and --method."""
    parser.add_argument("--native", action="store_true", help="also record native stacks")
    add_method_option(parser)
    parser.add_argument(
        "--trace-python-allocators", action="store_true",
        help="record every PyMem/PyObject allocation, not only the arenas pymalloc maps",
    )
    from memtrace_tui.cli._program_options import add_sample_option

    add_sample_option(parser)


def add_method_option(parser: argparse.ArgumentParser) -> None:
    """--method and --allow-untrusted-paths: how to inject, and what may be injected."""
    parser.add_argument(
        "--allow-untrusted-paths", action="store_true",
        help="attach even when a file memtrace would load into the target (or a directory "
             "above it) could be changed by another user; prints a warning",
    )
    parser.add_argument(
        "--method", choices=("ptrace", "gdb"), default="ptrace",
        help="how to inject the tracer: memtrace's own ptrace injector (default) or gdb "
             "(refused where a gdb older than 14 would harm the target)",
    )


def _parse_pid(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"invalid PID {value!r}") from None


def run(args: argparse.Namespace) -> int:
    """Attach, record for --duration seconds (or until Ctrl-C / the target exits), detach."""
    from memtrace_core.attach.session import Attachment
    from memtrace_core.capture.copier import CaptureCopier
    from memtrace_core.tracer.pools import NOTE_PREFIX
    from memtrace_tui.cli.run import open_output

    pid = _parse_pid(args.pid)
    if args.stop:
        return stop_other(pid)
    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be positive")
    output = args.output or f"memtrace-attach-{pid}.mtrace"
    attachment = Attachment(pid, args.native, args.trace_python_allocators, args.method,
                            args.allow_untrusted_paths, sample_bytes=args.sample)
    from memtrace_core.attach import target

    target.inspect(pid)  # fail before creating the output file
    out_fd = open_output(output, args.force)
    try:
        copier = None
        try:
            copier = CaptureCopier(attachment.begin(), out_fd, sampled=bool(args.sample))
            copier.start()  # drains from the first byte: the tracer must never wait for us
            warn_untrusted(attachment)
            attachment.wait_ready()
        except BaseException:
            if copier is not None:
                copier.stop()
                copier.eof.wait(timeout=5)
            os.close(out_fd)
            os.unlink(output)
            raise
        held = (f" (one thread held {attachment.stopped_ms[-1]:.1f} ms)"
                if attachment.stopped_ms else "")
        say(f"memtrace: attached to process {pid} in {attachment.attach_seconds:.2f} s"
            f"{held}; recording to {output}")
        noted = attachment.note
        if noted:
            say(f"{NOTE_PREFIX}{noted}")
        if args.duration is None:
            quoted = shlex.quote(output)
            say(f"memtrace: follow it with: memtrace view --follow {quoted} (or memtrace "
                f"top --follow {quoted}); stop with Ctrl-C here or memtrace attach --stop "
                f"{pid}; closing this terminal does not stop it")
        interrupted = _wait(attachment, copier, args.duration)
        ended = copier.eof.is_set()  # the target exited, or its tracer stopped by itself
        exited = not attachment.alive()
        clean = False
        if not ended and not exited:
            clean = attachment.detach()
            if clean:
                copier.eof.wait(timeout=10)
        copier.stop()
        copier.eof.wait(timeout=5)
    finally:
        attachment.close()
    os.close(out_fd)
    if exited:
        say(f"memtrace: process {pid} exited; capture in {output}")
    elif ended:
        say(f"memtrace: the stream from process {pid} ended early (its tracer stopped); "
            f"capture in {output}")
    elif clean:
        held = (f"; one thread held {attachment.stopped_ms[-1]:.1f} ms"
                if len(attachment.stopped_ms) > 1 else "")
        say(f"memtrace: detached from process {pid} (it runs on untraced{held}); capture in "
            f"{output}")
    else:
        say(f"memtrace: detached from process {pid} by closing the channel (its tracer "
            f"stops by itself); capture in {output} has no trailer")
    if attachment.note and not noted:  # the pool served its first allocations meanwhile
        say(f"{NOTE_PREFIX}{attachment.note}")
    if args.native and not args.no_names:
        from memtrace_tui.cli._progress import name_capture

        name_capture(output)
    return 130 if interrupted and args.duration is not None else 0


def warn_untrusted(attachment: Any) -> None:
    """One warning line when --allow-untrusted-paths let a refusal pass."""
    if attachment.trust_problems:
        more = len(attachment.trust_problems) - 1
        print(f"memtrace: warning: attaching although {attachment.trust_problems[0]}"
              + (f" (and {more} more)" if more else "")
              + "; another user could run code inside the target", file=sys.stderr)


def say(line: str) -> None:
    """A status line on stderr; nothing when the terminal is gone (tracing goes on)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def _wait(attachment: Any, copier: Any, duration: float | None) -> bool:
    """Until the duration ends, the stream ends, or Ctrl-C / SIGTERM / `attach --stop`
    (both detach cleanly); True when interrupted. A closed terminal (SIGHUP) changes
    nothing: tracing goes on into the file."""
    end = None if duration is None else time.monotonic() + duration
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM,
                                                       signal.SIGHUP)}
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        while not stop.is_set() and not copier.eof.is_set():
            left = 0.2 if end is None else min(0.2, end - time.monotonic())
            if left <= 0:
                break
            stop.wait(left)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return stop.is_set()


def stop_other(pid: int) -> int:
    """`memtrace attach --stop PID`: find the memtrace tracing PID (its channel directory
    names the target) and ask it to detach (SIGINT), then wait for it to finish."""
    from memtrace_core.attach import channel

    owners = channel.attachers_of(pid)
    if not owners:
        raise UserError(f"no memtrace attach is tracing process {pid}")
    for owner in owners:
        try:
            os.kill(owner, signal.SIGINT)
        except ProcessLookupError:
            continue
        except PermissionError:
            raise UserError(f"not permitted to stop memtrace (pid {owner}) tracing process "
                            f"{pid}: run this as its user or as root") from None
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{o}") for o in owners) and time.monotonic() < deadline:
        time.sleep(0.05)
    if any(os.path.exists(f"/proc/{o}") for o in owners):
        raise UserError(f"memtrace (pid {', '.join(map(str, owners))}) did not finish "
                        f"detaching from process {pid} within 30 s")
    say(f"memtrace: stopped tracing process {pid} (memtrace pid "
        f"{', '.join(map(str, owners))} detached)")
    return 0


# -- memtrace live --attach PID -----------------------------------------------------------

def run_live(args: argparse.Namespace) -> int:
    """`memtrace live --attach PID`: attach, show the TUI, detach when it quits."""
    from memtrace_core.attach import target
    from memtrace_core.attach.session import Attachment

    pid = _parse_pid(args.attach)
    if getattr(args, "script", None) or getattr(args, "module", None):
        raise UserError("give either a program to run or --attach PID, not both")
    if not sys.stdout.isatty():
        raise UserError("live needs a terminal (use `memtrace attach PID -o FILE`)")
    output = getattr(args, "output", None)
    if output and os.path.exists(output) and not getattr(args, "force", False):
        raise UserError(f"{output} exists (use --force to overwrite)")
    target.inspect(pid)
    native = bool(getattr(args, "native", False))
    attachment = Attachment(pid, native, bool(getattr(args, "trace_python_allocators", False)),
                            getattr(args, "method", "ptrace"),
                            bool(getattr(args, "allow_untrusted_paths", False)),
                            sample_bytes=getattr(args, "sample", 0) or 0)
    from memtrace_tui.cli._leak_options import live_session

    created = bool(output) and not os.path.exists(output)
    session = live_session(args, native)
    tree = session.tree
    try:
        from memtrace_tui.attach_controller import AttachController

        controller = AttachController(attachment, attachment.begin(), session,
                                      tee_path=output, tee_sampled=bool(attachment.sample_bytes))
        warn_untrusted(attachment)
        controller.start_feed()  # drain from the first byte, before the agent reports
        try:
            attachment.wait_ready()
        except BaseException:
            controller.feed.stop()
            controller.feed.eof.wait(timeout=5)
            if created and output:
                os.unlink(output)
            raise
        from memtrace_tui.app import MemtraceApp

        try:
            MemtraceApp(session, controller).run()
        finally:
            if not session.detached and session.running:
                controller.detach()  # the app ended some other way: never leave hooks in
    finally:
        tree.close()
        attachment.close()
    if output:
        print(f"memtrace: capture: {output}", file=sys.stderr)
        if native and not getattr(args, "no_names", False):
            from memtrace_tui.cli._progress import name_capture

            name_capture(output)
    if session.detached:
        print(f"memtrace: process {pid} runs on untraced", file=sys.stderr)
    return 0
