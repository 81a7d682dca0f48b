"""`memtrace live [--native] [-o FILE] script.py args…`: run a program under the tracer and
watch its memory in the terminal UI while it runs."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from memtrace_tui.cli._program_options import add_program_arguments

    p = subparsers.add_parser(
        "live",
        help="run a program and watch its memory live in the terminal UI",
        description="Run a Python program under the tracer and show its call tree of top "
        "allocators live. The program's stdout/stderr go to a log file (key L shows it).",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="also save the stream as a capture")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    from memtrace_tui.cli.run import add_no_names

    add_no_names(p)
    p.add_argument("--log", metavar="FILE",
                   help="program output log (default: a file in the temp directory)")
    p.add_argument("--background", action="store_true",
                   help="no UI: start the program traced into -o FILE, detached from this "
                        "terminal, print how to follow it (`memtrace view --follow FILE`) "
                        "and return at once")
    p.add_argument("--attach", type=int, metavar="PID",
                   help="attach to a running Python process instead of starting a program")
    p.add_argument("--follow-fork", action="store_true",
                   help="also trace the program's child processes (forks, multiprocessing "
                        "workers, Python subprocesses), each into a capture FILE.PID next to "
                        "-o FILE (or in a temporary directory); key P picks one to view")
    from memtrace_tui.cli._leak_options import add_leak_options
    from memtrace_tui.cli.attach import add_method_option

    add_method_option(p)
    add_leak_options(p)
    add_program_arguments(p)
    p.set_defaults(func=run)


def _child_env() -> dict[str, str]:
    """The runner must import memtrace_core even when it is not installed."""
    import os

    import memtrace_core

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(memtrace_core.__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                else "")
    return env


def _split_stdin() -> tuple[int, int | None]:
    """The program's stdin, and the terminal the UI reads keys from.

    A terminal stays the UI's: the program gets /dev/null. A pipe or file goes to the
    program, and the UI reads keys from /dev/tty instead (moved onto fd 0, where Textual
    reads)."""
    import os
    import subprocess
    import sys

    from memtrace_core.errors import UserError

    if sys.stdin is not None and sys.stdin.isatty():
        return subprocess.DEVNULL, None
    program_stdin = os.dup(0)
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        os.close(program_stdin)
        raise UserError("live needs a terminal for its keys (no /dev/tty)") from None
    os.dup2(tty, 0)
    os.close(tty)
    return program_stdin, 0


def run(args: argparse.Namespace) -> int:
    import os
    import subprocess
    import sys
    import tempfile

    from memtrace_core.errors import UserError
    from memtrace_tui.cli._program_options import program_from_args

    if args.attach is not None:  # memtrace_tui/cli/attach.py owns the attached session
        if args.program is not None:
            raise UserError("give either --attach PID or a program to run, not both",
                            status=2)
        if args.follow_fork:
            raise UserError("--follow-fork traces a program memtrace starts, not an attached "
                            "process", status=2)
        if args.arrow_system_pool:
            raise UserError("--arrow-system-pool chooses the pool of a program memtrace "
                            "starts; an attached process keeps its own", status=2)
        from memtrace_tui.cli.attach import run_live

        return run_live(args)
    program = program_from_args(args)
    program.check()
    if args.background:
        return _background(args, program)
    if not sys.stdout.isatty():
        raise UserError("live needs a terminal (use `memtrace run` to record a capture)")
    if args.output and os.path.exists(args.output) and not args.force:
        raise UserError(f"{args.output} exists (use --force to overwrite)")
    if args.output:
        try:
            open(args.output, "wb").close()
        except OSError as exc:
            raise UserError(f"cannot write {args.output}: {exc.strerror}") from None
    name = program.name
    if args.log:
        log_path = os.path.abspath(args.log)
        log = open(log_path, "wb")  # noqa: SIM115
    else:
        fd, log_path = tempfile.mkstemp(prefix=f"memtrace-live-{name}-", suffix=".log")
        log = os.fdopen(fd, "wb")

    from memtrace_core.model.feed import enlarge_pipe
    from memtrace_tui.cli._leak_options import live_session

    read_fd, write_fd = os.pipe()
    enlarge_pipe(read_fd)
    cmd = [sys.executable, "-m", "memtrace_core.tracer.runner", "--fd", str(write_fd)]
    child_prefix = _child_prefix(args, name) if args.follow_fork else None
    if child_prefix is not None:
        cmd += ["--follow-prefix", child_prefix]
    if args.native:
        cmd.append("--native")
    if args.trace_python_allocators:
        cmd.append("--trace-python-allocators")
    if args.arrow_system_pool:
        cmd.append("--arrow-system-pool")
    if args.sample:
        cmd += ["--sample", str(args.sample)]
    cmd += program.runner_command_line
    stdin, tty_fd = _split_stdin()
    try:
        proc = subprocess.Popen(cmd, pass_fds=[write_fd], stdin=stdin, stdout=log,
                                stderr=log, env=_child_env(), start_new_session=True)
    finally:
        os.close(write_fd)
        log.close()
        if isinstance(stdin, int) and stdin >= 0:
            os.close(stdin)

    session = live_session(args, args.native)
    tree = session.tree
    session.log_path = log_path
    session.child_prefix = child_prefix

    from memtrace_tui.app import MemtraceApp
    from memtrace_tui.live_controller import LiveController

    # followed children: the program's own stream goes to disk too (next to theirs), so the
    # process picker can open all of them together and the reports can merge them later
    capture = args.output or child_prefix
    controller = LiveController(proc, read_fd, session, log_path=log_path,
                                tee_path=capture, tee_sampled=bool(args.sample))
    try:
        MemtraceApp(session, controller).run()
    finally:
        tree.close()
        if controller.feed is None:
            os.close(read_fd)
    print(f"memtrace: program output: {log_path}", file=sys.stderr)
    if args.output and args.native and not args.no_names and controller.feed is not None:
        controller.feed.eof.wait(timeout=10)  # the tee is closed: the capture is finished
        from memtrace_tui.cli._progress import name_capture

        name_capture(args.output)
    if capture:
        print(f"memtrace: capture: {capture}", file=sys.stderr)
    if child_prefix is not None:
        from memtrace_core.tracer.children import child_captures

        found = child_captures(child_prefix)
        if found:
            print(f"memtrace: {len(found)} child process capture"
                  f"{'s' if len(found) > 1 else ''}: {', '.join(found)}", file=sys.stderr)
    if session.detached:
        print(f"memtrace: pid {proc.pid} runs on untraced", file=sys.stderr)
        return 0
    code = proc.poll()
    if code is None:
        return 0
    return code if code >= 0 else 128 - code


def _child_prefix(args: argparse.Namespace, name: str) -> str:
    """Where followed children write their captures (PREFIX.PID): next to -o FILE, as `run
    --follow-fork` does, else in a fresh temporary directory (named when the UI closes)."""
    import os
    import tempfile

    if args.output:
        return os.path.abspath(args.output)
    return os.path.join(tempfile.mkdtemp(prefix="memtrace-live-"), f"{name}.mtrace")


def _background(args: argparse.Namespace, program) -> int:
    """`live --background -o FILE`: `memtrace run -o FILE` in a session of its own (a lost
    terminal's SIGHUP never reaches it), output in a log file; return at once."""
    import os
    import shlex
    import subprocess
    import sys
    import time

    from memtrace_core.errors import UserError

    if not args.output:
        raise UserError("--background needs -o FILE (the capture to follow)", status=2)
    output = os.path.abspath(args.output)
    if os.path.exists(output) and not args.force:
        raise UserError(f"{args.output} exists (use --force to overwrite)")
    log_path = os.path.abspath(args.log) if args.log else output + ".log"
    cmd = [sys.executable, "-m", "memtrace_tui", "run", "-o", output, "--force"]
    if args.native:
        cmd.append("--native")
    if args.no_names:
        cmd.append("--no-names")
    if args.trace_python_allocators:
        cmd.append("--trace-python-allocators")
    if args.arrow_system_pool:
        cmd.append("--arrow-system-pool")
    if args.follow_fork:
        cmd.append("--follow-fork")
    if args.sample:
        cmd += ["--sample", str(args.sample)]
    cmd += program.runner_command_line
    try:
        log = open(log_path, "wb")  # noqa: SIM115 - handed to the child
    except OSError as exc:
        raise UserError(f"cannot write {log_path}: {exc.strerror}") from None
    if os.path.exists(output):
        os.unlink(output)  # --force: the new capture's appearance is the start signal
    with log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=_child_env(), start_new_session=True)
    # Return once the capture exists, so the follow command printed below works at once.
    deadline = time.monotonic() + 30
    while not (os.path.exists(output) and os.path.getsize(output) > 0):
        code = proc.poll()
        if code is not None:
            with open(log_path, "rb") as f:
                tail = f.read()[-2000:].decode("utf-8", "replace").strip().splitlines()
            raise UserError(f"the program ended before tracing started (status {code}): "
                            f"{tail[-1] if tail else 'no output'}", status=code or 1)
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    quoted = shlex.quote(output)
    print(f"memtrace: tracing {program.name} (pid {proc.pid}) in the background into "
          f"{output}\n"
          f"memtrace: follow it with: memtrace view --follow {quoted}\n"
          f"memtrace:   or as text:   memtrace top --follow {quoted}\n"
          f"memtrace: program output: {log_path}", file=sys.stderr)
    return 0
