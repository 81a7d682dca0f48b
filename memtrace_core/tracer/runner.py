"""Run a Python program under the tracer, as `python script.py` / `python -m module` would.

Used in-process by `memtrace run` (stream to a capture file) and as
`python -m memtrace_core.tracer.runner --fd N ...` by `memtrace live` (stream to a pipe).
The program keeps its argv, stdio, `__main__`, `sys.path[0]`, traceback text and exit status.
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
import threading
import time
import types
from dataclasses import dataclass

from memtrace_core.errors import UserError
from memtrace_core.tracer.program import (
    CODE,
    MODULE,
    SCRIPT,
    STDIN,
    Program,
    mark_takes_program,
    require_program,
    split_command_line,
)

__all__ = ["Program", "add_program_arguments", "execute", "program_from_args", "run"]


@dataclass
class _ExitState:
    code: int | None = None
    interrupted: bool = False


_exit_state = _ExitState()


def header_fields(program: Program, native: bool, python_allocators: bool, attached: bool) -> dict:
    """The HEADER record's map (docs/FORMAT.md)."""
    return {
        "format": 1,
        "pid": os.getpid(),
        "argv": [sys.executable, *program.command_line],
        "python": ".".join(str(p) for p in sys.version_info[:3]),
        "native": bool(native),
        "python_allocators": bool(python_allocators),
        "start_time": time.time(),
        "attached": attached,
        "executable": sys.executable,
    }


def _name_threads(tracer: types.ModuleType) -> None:
    """Record Python thread names: the running threads now, every new thread as it starts.

    The hook wraps `Thread._set_native_id`, which a new thread calls once and returns from,
    so no memtrace frame stays on the thread's stack.
    """
    for thread in threading.enumerate():
        if thread.native_id is not None:
            tracer.set_thread_name(thread.native_id, thread.name)
    original = getattr(threading.Thread, "_set_native_id", None)
    if original is None or getattr(original, "_memtrace", False):
        return

    def _set_native_id(self: threading.Thread) -> None:
        original(self)
        try:
            tracer.set_thread_name(self.native_id, self.name)
        except Exception:
            pass

    _set_native_id._memtrace = True  # type: ignore[attr-defined]
    threading.Thread._set_native_id = _set_native_id  # type: ignore[attr-defined]
    _follow_renames(tracer)


def _follow_renames(tracer: types.ModuleType) -> None:
    """`thread.name = ...` (and setName) is recorded as a rename: the thread's later
    allocations carry the new name, its earlier ones keep theirs. The wrapper removes
    itself once tracing has ended (a detach, a closed reader)."""
    prop = threading.Thread.__dict__.get("name")
    if not isinstance(prop, property) or prop.fset is None or isinstance(prop, _Renaming):
        return

    def set_name(self: threading.Thread, value: str) -> None:
        prop.fset(self, value)  # type: ignore[misc]
        try:
            if tracer.running():
                if self.native_id is not None:
                    tracer.rename_thread(self.native_id, self.name)
            elif threading.Thread.__dict__.get("name") is renaming:
                threading.Thread.name = prop  # type: ignore[method-assign]
        except Exception:  # noqa: BLE001 - never break the program's threads
            pass

    renaming = _Renaming(prop.fget, set_name, prop.fdel, prop.__doc__)
    threading.Thread.name = renaming  # type: ignore[method-assign]


class _Renaming(property):
    """Thread.name while memtrace follows renames."""


def _quiet_fork_warning() -> None:
    """Python 3.12+ warns in os.fork when the process has other threads; the tracer's writer
    thread must not make a single-threaded program print that warning."""
    if sys.version_info < (3, 12):
        return
    import warnings

    real_fork = os.fork

    def fork() -> int:
        if _os_thread_count() <= 2:  # the caller and memtrace's writer
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message=r"This process \(pid=\d+\) is multi-threaded",
                    category=DeprecationWarning,
                )
                return real_fork()
        return real_fork()

    fork.__doc__ = real_fork.__doc__
    os.fork = fork


def _os_thread_count() -> int:
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[17])
    except (OSError, IndexError, ValueError):
        return 0


def start_tracing(
    fd: int,
    header: dict,
    native: bool,
    python_allocators: bool,
    root_code: object = None,
    compress: bool = False,
) -> None:
    """Start the C tracer writing to fd, and stop it when the interpreter exits."""
    from memtrace_core.tracer import _tracer
    from memtrace_core.tracer.header import header_record

    try:
        _tracer.start(fd, native, python_allocators, header_record(header), compress)
    except _tracer.TracerError as exc:
        raise UserError(str(exc)) from None
    _tracer.set_root_code(root_code)
    _name_threads(_tracer)
    _quiet_fork_warning()
    # Registered before the program's own handlers: atexit runs it last, so their
    # allocations are traced too.
    atexit.register(_stop_at_exit, _tracer)


def _stop_at_exit(tracer: types.ModuleType) -> None:
    if _exit_state.code is None and not _exit_state.interrupted:
        # The interpreter finalizes without knowing the process's exit status (attached,
        # or finalized from C): the C exit path writes the trailer with the real one.
        tracer.stop_at_process_exit()
        return
    tracer.stop(_exit_state.code)
    if _exit_state.interrupted:
        # Python exits through SIGINT after an uncaught KeyboardInterrupt: so do we.
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF if code >= 0 else code & 0xFF
    return 1


def _fresh_main(**attributes: object) -> dict:
    """A new `__main__` module as python's own before it runs a program, made current."""
    import builtins
    import importlib.machinery

    main = types.ModuleType("__main__")
    main.__loader__ = importlib.machinery.BuiltinImporter
    main.__annotations__ = {}
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    for name, value in attributes.items():
        setattr(main, name, value)
    sys.modules["__main__"] = main
    return main.__dict__


def _runs_as_package(path: str) -> bool:
    """A directory or zip file holding __main__: python runs it through runpy. Decided
    before tracing starts (zipimport is what python itself uses, and is always loaded)."""
    import zipimport

    if os.path.isdir(path):
        return True
    try:
        zipimport.zipimporter(path)
    except (zipimport.ZipImportError, OSError):
        return False
    return True


def _via_runpy(program: Program) -> bool:
    """Whether runpy runs the program (-m, a directory, a zip file); runpy is then loaded
    now, as python loads it before the program's first line."""
    via = program.kind == MODULE or (
        program.kind == SCRIPT and _runs_as_package(program.target))
    if via:
        import runpy  # noqa: F401
    return via


def _prepare(program: Program, via_runpy: bool) -> tuple[types.CodeType | None, dict]:
    """Everything python does before the program's first line: sys.argv, sys.path[0], a
    fresh __main__ and the compiled code (None: runpy runs it, as python does for -m, a
    directory or a zip file). A syntax error raises here, like python's."""
    import importlib.machinery
    import io

    sys.argv = program.argv
    if program.kind == MODULE:
        sys.path[0] = os.getcwd()
        return None, _fresh_main()
    if program.kind == CODE:
        sys.path[0] = ""
        return compile(program.target, "<string>", "exec", dont_inherit=True), _fresh_main()
    if program.kind == STDIN:
        sys.path[0] = ""
        source = sys.stdin.buffer.read()
        main = _fresh_main(__file__="<stdin>", __cached__=None)
        return compile(source, "<stdin>", "exec", dont_inherit=True), main
    path = program.target
    if via_runpy:
        sys.path[0] = os.path.abspath(path)
        return None, _fresh_main()
    abspath = os.path.abspath(path)
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    loader = importlib.machinery.SourceFileLoader("__main__", abspath)
    main = _fresh_main(__loader__=loader, __file__=abspath, __cached__=None)
    with io.open_code(abspath) as f:
        source = f.read()
    return compile(source, abspath, "exec", dont_inherit=True), main


def _enter(program: Program, code: types.CodeType | None, main: dict) -> None:
    """The program's only caller: traced stacks stop here (its code is the tracer's root)."""
    if code is not None:
        exec(code, main)
    else:
        import runpy  # loaded already (_via_runpy)

        runpy._run_module_as_main(  # type: ignore[attr-defined]
            program.target if program.kind == MODULE else "__main__",
            alter_argv=program.kind == MODULE,
        )


def _trim_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """Drop memtrace's own outer frames: the traceback reads as without memtrace (a syntax
    error of the script itself has none left, as under python)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(here + os.sep):
        tb = tb.tb_next
    return tb


def execute(program: Program, via_runpy: bool | None = None) -> None:
    """Run the program in this interpreter; raises SystemExit with its exit status."""
    if via_runpy is None:
        via_runpy = _via_runpy(program)
    try:
        _enter(program, *_prepare(program, via_runpy))
    except SystemExit as exc:
        _exit_state.code = _exit_code(exc)
        raise
    except BaseException as exc:  # noqa: BLE001 - any uncaught error is the program's own
        tb = _trim_traceback(exc.__traceback__)
        exc.__traceback__ = tb  # the default hook prints the exception's own traceback
        sys.excepthook(type(exc), exc, tb)
        _exit_state.code = 1
        if isinstance(exc, KeyboardInterrupt):
            _exit_state.interrupted = True
            _exit_state.code = 130
        raise SystemExit(1) from None
    _exit_state.code = 0


def _python_process_name() -> None:
    """The process (and the C threads it starts, which inherit the name) is named as under
    python, not after the `memtrace` script that started it: the program sees its usual
    /proc/self/comm, and threads that never name themselves keep their kernel name."""
    try:
        with open("/proc/thread-self/comm", "wb") as comm:
            comm.write(os.path.basename(sys.executable).encode()[:15])
    except OSError:
        pass


def run(
    program: Program, fd: int, native: bool, python_allocators: bool, compress: bool = False
) -> None:
    """Check, start tracing into fd, and execute the program."""
    program.check()
    _python_process_name()
    header = header_fields(program, native, python_allocators, attached=False)
    via_runpy = _via_runpy(program)  # memtrace's own work: before tracing starts
    # Stacks stop at our runner: a script's outermost frame is its <module>; a module keeps
    # runpy's frames, as under `python -m`.
    start_tracing(fd, header, native, python_allocators, _enter.__code__, compress)
    execute(program, via_runpy)


def add_program_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by `run`, `live` and this runner; added last, as the program's
    command line follows them."""
    parser.add_argument(
        "--native", action="store_true", help="also record native (C/C++) stacks"
    )
    parser.add_argument(
        "--trace-python-allocators",
        action="store_true",
        help="record every PyMem/PyObject allocation, not only the arenas pymalloc maps",
    )
    mark_takes_program(parser)


def program_from_args(args: argparse.Namespace) -> Program:
    """The program given after memtrace's options (see program.py), or a usage error."""
    return require_program(getattr(args, "program", None))


def main(argv: list[str] | None = None) -> None:
    """`python -m memtrace_core.tracer.runner --fd N [...] script args`: stream to fd N."""
    parser = argparse.ArgumentParser(prog="memtrace-runner")
    parser.add_argument("--fd", type=int, required=True, help="write the stream to this fd")
    add_program_arguments(parser)
    try:
        own, program = split_command_line(parser, sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(own)
        os.set_inheritable(args.fd, False)
        run(require_program(program), args.fd, args.native, args.trace_python_allocators)
    except UserError as exc:
        print(f"memtrace: error: {exc}", file=sys.stderr)
        sys.exit(exc.status)


if __name__ == "__main__":
    main()
