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
from dataclasses import dataclass, field

from memtrace_core.errors import UserError


@dataclass
class Program:
    """What to run: a script path or a module name, with its arguments."""

    target: str
    args: list[str] = field(default_factory=list)
    module: bool = False

    @property
    def argv(self) -> list[str]:
        """argv as the program will see it (a module's argv[0] is fixed up by runpy)."""
        return [self.target if not self.module else "-m", *self.args] if self.module else [
            self.target,
            *self.args,
        ]

    def check(self) -> None:
        """Fail with a one-line error before tracing starts when the target is missing."""
        if self.module:
            import importlib.util

            try:
                spec = importlib.util.find_spec(self.target)
            except (ImportError, ValueError) as exc:
                raise UserError(f"no module named {self.target!r} ({exc})") from None
            if spec is None:
                raise UserError(f"no module named {self.target!r}")
        elif not os.path.exists(self.target):
            raise UserError(f"no such script: {self.target}")
        elif os.path.isfile(self.target) and not os.access(self.target, os.R_OK):
            raise UserError(f"cannot read script: {self.target}")


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
        "argv": [
            sys.executable,
            *(["-m"] if program.module else []),
            program.target,
            *program.args,
        ],
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


def _run_script(path: str) -> None:
    """Execute a script as `python path` does: a fresh __main__, absolute __file__."""
    import importlib.machinery
    import io

    abspath = os.path.abspath(path)
    if os.path.isdir(path) or not path.endswith((".py", ".pyw")) and _is_zip(path):
        import runpy

        sys.path[0] = abspath
        runpy.run_path(path, run_name="__main__")
        return
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    with io.open_code(abspath) as f:
        source = f.read()
    code = compile(source, abspath, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__file__ = abspath
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", abspath)
    main.__builtins__ = __builtins__  # type: ignore[attr-defined]
    main.__spec__ = None
    main.__cached__ = None  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def _is_zip(path: str) -> bool:
    import zipfile

    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _trim_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """Drop memtrace's and runpy's frames so the traceback reads as without memtrace."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    first = tb
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith(here) and not filename.endswith(("runpy.py", "<frozen runpy>")):
            return tb
        tb = tb.tb_next
    return first


def execute(program: Program) -> None:
    """Run the program in this interpreter; raises SystemExit with its exit status."""
    sys.argv = [program.target, *program.args]
    try:
        if program.module:
            import runpy

            sys.path[0] = os.getcwd()
            runpy._run_module_as_main(program.target, alter_argv=True)  # type: ignore[attr-defined]
        else:
            _run_script(program.target)
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
    # Stacks stop at our runner: a script's outermost frame is its <module>; a module keeps
    # runpy's frames, as under `python -m`.
    root = execute.__code__ if program.module else _run_script.__code__
    start_tracing(fd, header, native, python_allocators, root, compress)
    execute(program)


def add_program_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by `run`, `live` and this runner."""
    parser.add_argument(
        "--native", action="store_true", help="also record native (C/C++) stacks"
    )
    parser.add_argument(
        "--trace-python-allocators",
        action="store_true",
        help="record every PyMem/PyObject allocation, not only the arenas pymalloc maps",
    )
    parser.add_argument("-m", dest="module", metavar="MODULE", help="run a library module")
    parser.add_argument("script", nargs="?", help="the Python script to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the program")


def program_from_args(args: argparse.Namespace) -> Program:
    """Build the Program from parsed options (`-m MODULE args...` or `script args...`)."""
    if args.module:
        rest = ([args.script] if args.script is not None else []) + list(args.args)
        return Program(args.module, rest, module=True)
    if not args.script:
        raise UserError("give a script to run, or -m MODULE")
    return Program(args.script, list(args.args))


def main(argv: list[str] | None = None) -> None:
    """`python -m memtrace_core.tracer.runner --fd N [...] script args`: stream to fd N."""
    parser = argparse.ArgumentParser(prog="memtrace-runner")
    parser.add_argument("--fd", type=int, required=True, help="write the stream to this fd")
    add_program_arguments(parser)
    args = parser.parse_args(argv)
    try:
        program = program_from_args(args)
        os.set_inheritable(args.fd, False)
        run(program, args.fd, args.native, args.trace_python_allocators)
    except UserError as exc:
        print(f"memtrace: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
