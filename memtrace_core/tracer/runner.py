"""Run a Python program under the tracer, as `python script.py` / `python -m module` would.

Used in-process by `memtrace run` (stream to a capture file) and as
`python -m memtrace_core.tracer.runner --fd N ...` by `memtrace live` (stream to a pipe).
The program keeps its argv, stdio, `__main__`, `sys.path[0]`, traceback text and exit status.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import types

from memtrace_core.errors import UserError
from memtrace_core.tracer import collector
from memtrace_core.tracer.program import (
    CODE,
    MODULE,
    STDIN,
    Program,
    require_program,
    split_command_line,
)

__all__ = ["Program", "execute", "main", "run"]


class _ExitState:
    """How the program ended, for the exit handler. (No dataclasses on the start-up path of
    a traced run: see Program.)"""

    def __init__(self) -> None:
        self.code: int | None = None
        self.interrupted = False


_exit_state = _ExitState()


def header_fields(program: Program, native: bool, python_allocators: bool, attached: bool,
                  sample_bytes: int = 0) -> dict:
    """The HEADER record's map (docs/FORMAT.md)."""
    from memtrace_core.tracer._tracer import FORMAT_VERSION

    fields = {
        "format": FORMAT_VERSION,
        "pid": os.getpid(),
        "argv": [sys.executable, *program.command_line],
        "python": ".".join(str(p) for p in sys.version_info[:3]),
        "native": bool(native),
        "python_allocators": bool(python_allocators),
        "start_time": time.time(),
        "attached": attached,
        "executable": sys.executable,
    }
    if sample_bytes:
        fields["sample_bytes"] = sample_bytes
    return fields


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
    if sys.version_info < (3, 12) or getattr(os.fork, "_memtrace", False):
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
    fork._memtrace = True  # type: ignore[attr-defined]
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
    sample_seed: int = 0,
) -> None:
    """Start the C tracer writing to fd, and stop it when the interpreter exits (sampling
    with the header's `sample_bytes`, if any)."""
    from memtrace_core.tracer import _tracer
    from memtrace_core.tracer.header import header_record

    try:
        _tracer.start(fd, native, python_allocators, header_record(header), compress,
                      sample_bytes=header.get("sample_bytes", 0), sample_seed=sample_seed)
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


class _Prepared:
    """The program ready to start: its __main__ and its compiled code (None: runpy runs it,
    as python does for -m, a directory or a zip file), or the error compiling it raised."""

    def __init__(self, main: dict, code: types.CodeType | None = None,
                 error: BaseException | None = None) -> None:
        self.main = main
        self.code = code
        self.error = error


def _compiled(main: dict, source: bytes | str, filename: str) -> _Prepared:
    """Python compiles a script (or -c code, or stdin) before its first line runs, with no
    Python frame of the program's yet: so does memtrace, before tracing starts, so the
    program's view never shows the compiler working for memtrace's runner. A syntax error
    is kept and raised when the program starts, so the capture still records the failed run
    with python's traceback and exit status."""
    from memtrace_core.tracer import _tracer

    try:
        return _Prepared(main, _tracer.compile_program(source, filename))
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes in the source
        exc.__traceback__ = None
        return _Prepared(main, error=exc)


def _prepare(program: Program) -> _Prepared:
    """Everything python does before the program's first line, done before tracing starts
    (it is memtrace's work, not the program's): sys.argv, sys.path[0], a fresh __main__,
    the source read and compiled, runpy loaded where it runs the program."""
    import importlib.machinery
    import io

    sys.argv = program.argv
    if program.kind == MODULE:
        import runpy  # noqa: F401 - loaded by python itself before a -m module runs

        sys.path[0] = os.getcwd()
        return _Prepared(_fresh_main())
    if program.kind == CODE:
        sys.path[0] = ""
        _register_source("<string>", program.target)
        return _compiled(_fresh_main(), program.target, "<string>")
    if program.kind == STDIN:
        sys.path[0] = ""
        main = _fresh_main(__file__="<stdin>", __cached__=None)
        return _compiled(main, sys.stdin.buffer.read(), "<stdin>")
    path = program.target
    if _runs_as_package(path):
        import runpy  # noqa: F401,F811

        sys.path[0] = os.path.abspath(path)
        return _Prepared(_fresh_main())
    abspath = os.path.abspath(path)
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    loader = importlib.machinery.SourceFileLoader("__main__", abspath)
    main = _fresh_main(__loader__=loader, __file__=abspath, __cached__=None)
    try:
        with io.open_code(abspath) as f:
            source = f.read()
    except OSError as exc:  # gone since Program.check()
        raise UserError(
            f"can't open file {abspath!r}: [Errno {exc.errno}] {exc.strerror}", status=2
        ) from None
    return _compiled(main, source, abspath)


def _register_source(filename: str, source: str) -> None:
    """Python 3.13+ keeps `-c` code in linecache, so its tracebacks show the source lines."""
    import linecache

    register = getattr(linecache, "_register_code", None)
    if sys.version_info >= (3, 13) and register is not None:
        register(filename, source, filename)


def _enter(program: Program, prepared: _Prepared) -> None:
    """The program's only caller: traced stacks stop here (its code is the tracer's root).
    A syntax error found by _prepare raises here, as python reports it before the first
    line runs."""
    if prepared.error is not None:
        raise prepared.error
    from memtrace_core.tracer import _tracer

    # python starts a program at depth 0, as the first frame of its thread's frame stack:
    # memtrace's frames below it are lent back (and the call of exec, a C call python's own
    # start does not make), so the program meets RecursionError exactly where it would
    # without memtrace, in Python calls and in C ones, and its frames go on a stack of their
    # own, so its calls map and unmap the interpreter's frame chunks as without memtrace.
    if prepared.code is not None:
        _tracer.call_on_own_stack(exec, (prepared.code, prepared.main), 1)
    else:
        import runpy  # loaded already (_prepare)

        _tracer.call_on_own_stack(
            runpy._run_module_as_main,  # type: ignore[attr-defined]
            (program.target if program.kind == MODULE else "__main__", program.kind == MODULE),
            0,
        )


def _trim_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """Drop memtrace's own outer frames: the traceback reads as without memtrace (a syntax
    error of the script itself has none left, as under python)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(here + os.sep):
        tb = tb.tb_next
    return tb


def execute(program: Program, prepared: _Prepared | None = None) -> None:
    """Run the program in this interpreter; raises SystemExit with its exit status."""
    if prepared is None:
        prepared = _prepare(program)
    try:
        _enter(program, prepared)
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


def _say_arrow_pool(pid: int) -> None:
    """At exit, after the tracer stopped (its allocations unrecorded): the note, if any, on
    stderr, in the process that ran the program (a forked child inherits the handler)."""
    if os.getpid() != pid:
        return
    from memtrace_core.tracer.pools import NOTE_PREFIX, arrow_pool_note

    note = arrow_pool_note()
    if note is not None:
        print(f"{NOTE_PREFIX}{note}", file=sys.stderr)


def run(
    program: Program, fd: int, native: bool, python_allocators: bool, compress: bool = False,
    follow_output: str | None = None, header_extra: dict | None = None,
    sample_bytes: int = 0, arrow_system_pool: bool = False,
) -> None:
    """Check, start tracing into fd, and execute the program. With follow_output (the
    capture's path), child processes are traced into follow_output.PID (children.py);
    sample_bytes > 0 records a sample of the allocations (memtrace_core/sampling.py);
    arrow_system_pool makes Apache Arrow allocate through malloc (its children too)."""
    from memtrace_core.sampling import seed_from_env

    program.check()
    _python_process_name()
    if arrow_system_pool:
        from memtrace_core.tracer.pools import ARROW_POOL_VARIABLE

        os.environ[ARROW_POOL_VARIABLE] = "system"
    if "parent_pid" not in (header_extra or {}):  # the program's own process, not a child
        atexit.register(_say_arrow_pool, os.getpid())  # before the tracer's: runs after it
    header = header_fields(program, native, python_allocators, attached=False,
                           sample_bytes=sample_bytes)
    header.update(header_extra or {})
    # memtrace's own work, before tracing starts: the program ready to run, its children
    # watched (counted, or followed into captures of their own)
    prepared = _prepare(program)
    from memtrace_core.tracer import children

    if follow_output is not None:
        # children always write files: compressed, whatever this process writes to
        children.follow(children.Follow(follow_output, header, native, python_allocators,
                                        True, _enter.__code__))
    else:
        children.watch()
    # memtrace's young garbage collected, the collector on again where python would have it
    collector.resume()
    # Stacks stop at our runner: a script's outermost frame is its <module>; a module keeps
    # runpy's frames, as under `python -m`.
    start_tracing(fd, header, native, python_allocators, _enter.__code__, compress,
                  sample_seed=seed_from_env())
    execute(program, prepared)


RUNNER_OPTIONS = {"--fd": 1, "--capture-prefix": 1, "--follow-prefix": 1, "--sample": 1,
                  "--native": 0, "--trace-python-allocators": 0, "--arrow-system-pool": 0}
"""The runner's own options and how many values each takes (memtrace writes its command
line: `memtrace live` and children.py)."""


class RunnerOptions:
    """The runner's options (RUNNER_OPTIONS), parsed."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.capture_prefix: str | None = None
        self.follow_prefix: str | None = None
        self.sample = 0
        self.native = False
        self.trace_python_allocators = False
        self.arrow_system_pool = False


def parse_runner_options(tokens: list[str]) -> tuple[RunnerOptions, Program]:
    """The runner's options and the program after them, or a one-line UserError."""
    from memtrace_core.sampling import parse_sample_bytes

    own, program = split_command_line(RUNNER_OPTIONS.get, tokens)
    options = RunnerOptions()
    i = 0
    while i < len(own):
        name, eq, value = own[i].partition("=")
        if name not in RUNNER_OPTIONS:
            raise UserError(f"unknown runner option {own[i]!r}", status=2)
        if RUNNER_OPTIONS[name]:
            if not eq:
                if i + 1 >= len(own):
                    raise UserError(f"runner option {name} needs a value", status=2)
                i += 1
                value = own[i]
            attr = name[2:].replace("-", "_")
            try:
                if name == "--fd":
                    options.fd = int(value)
                elif name == "--sample":
                    options.sample = parse_sample_bytes(value)
                else:
                    setattr(options, attr, value)
            except ValueError:
                raise UserError(f"bad value for runner option {name}: {value!r}",
                                status=2) from None
        else:
            setattr(options, name[2:].replace("-", "_"), True)
        i += 1
    if (options.fd is None) == (options.capture_prefix is None):
        raise UserError("the runner needs one of --fd N or --capture-prefix FILE", status=2)
    return options, require_program(program)


def main(argv: list[str] | None = None) -> None:
    """`python -m memtrace_core.tracer.runner --fd N [...] script args`: stream to fd N
    (`memtrace live`), with `--follow-prefix FILE` its children traced into FILE.PID (`live
    --follow-fork`). `--capture-prefix FILE`: a child of a `--follow-fork` program, traced
    into FILE.PID, its own children too (children.py). Not a user's command (`memtrace
    run/live` are): its options are memtrace's to write, no argparse here."""
    collector.pause()  # resumed just before the program starts (collector.py)
    try:
        args, program = parse_runner_options(sys.argv[1:] if argv is None else argv)
        if args.capture_prefix is not None:
            path = f"{args.capture_prefix}.{os.getpid()}"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise UserError(f"cannot write {path}: {exc.strerror}") from None
            from memtrace_core.capture import take_writer_lock

            take_writer_lock(fd)
            run(program, fd, args.native, args.trace_python_allocators,
                compress=True, follow_output=args.capture_prefix,
                header_extra={"parent_pid": os.getppid()}, sample_bytes=args.sample)
            return
        assert args.fd is not None
        os.set_inheritable(args.fd, False)
        run(program, args.fd, args.native, args.trace_python_allocators,
            follow_output=args.follow_prefix, sample_bytes=args.sample,
            arrow_system_pool=args.arrow_system_pool)
    except UserError as exc:
        print(f"memtrace: error: {exc}", file=sys.stderr)
        sys.exit(exc.status)
    finally:
        collector.resume()


if __name__ == "__main__":
    main()
