"""Tracing a program's child processes (`memtrace run --follow-fork`), each into a capture of
its own next to the parent's: FILE.PID; without the flag, counting them (the capture's
TRAILER says how many children ran untraced).

- Forked children (os.fork, multiprocessing's fork workers): the C tracer stops in the child
  at fork (it must never write into the parent's stream); an `os.register_at_fork` hook then
  starts it again in the child, into FILE.PID, with the same options and stack root.
- Python children started by exec (multiprocessing's spawn and forkserver, `subprocess`
  running this same interpreter): `_posixsubprocess.fork_exec` and `os.posix_spawn(p)`,
  which they use, are wrapped so that such a command line runs through memtrace's runner
  (`-m memtrace_core.tracer.runner --capture-prefix FILE`), which gives the program the same
  argv, sys.path and __main__ as python would (memtrace_core/tracer/program.py), traces it
  into FILE.PID and follows its own children in turn. Other executables, and interpreters
  started with -E, -I or -S (which might not find memtrace), run as they are.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

# This module loads at every traced run's start: no dataclasses or typing here (a few
# milliseconds of start-up each).


class Follow:
    """Where and how children are traced: the parent's capture path (children write
    OUTPUT.PID) and the parent's options."""

    def __init__(self, output: str, header: dict, native: bool, python_allocators: bool,
                 compress: bool, root_code: object) -> None:
        self.output = output
        self.header = header
        self.native = native
        self.python_allocators = python_allocators
        self.compress = compress
        self.root_code = root_code


_follow: Follow | None = None
_untraced = 0
_watching = False
_exec_children: list[int] = []  # pids of the traced children started by exec


def watch() -> None:
    """Count the child processes the program starts untraced (os.fork, subprocess,
    multiprocessing, os.posix_spawn): the capture's TRAILER says how many."""
    global _watching
    if _watching:
        return
    _watching = True
    _set_untraced(0)
    os.register_at_fork(after_in_parent=_forked, after_in_child=_trace_forked_child)
    _wrap_fork_exec()
    for name in ("posix_spawn", "posix_spawnp"):  # subprocess uses posix_spawn too (3.13+)
        real = getattr(os, name, None)
        if real is not None and not getattr(real, "_memtrace", False):
            setattr(os, name, _spawning(real, search=name == "posix_spawnp"))


def follow(settings: Follow) -> None:
    """Trace every child started from now on."""
    global _follow
    _follow = settings
    watch()


def _set_untraced(n: int) -> None:
    global _untraced
    _untraced = n
    from memtrace_core.tracer import _tracer

    _tracer.set_untraced_children(n)


def _forked() -> None:
    if _follow is None:  # followed children trace themselves
        _set_untraced(_untraced + 1)


def _on_path(name: str) -> str:
    """NAME as posix_spawnp finds it on PATH (NAME itself when it has a slash)."""
    if os.sep in name:
        return name
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return name


def _spawning(real: Callable[..., int], search: bool) -> Callable[..., int]:
    """os.posix_spawn(p) that runs this interpreter's children through the runner when
    following, and counts the rest."""

    def spawn(path: str | bytes, argv: list, *rest: object, **kwargs: object) -> int:
        try:
            executable = os.fsdecode(path)
            if search:
                executable = _on_path(executable)
            rewritten = traced_command_line(list(argv), [executable])
        except Exception:  # noqa: BLE001 - the child then runs as it is
            rewritten = None
        pid = real(path, rewritten if rewritten is not None else argv, *rest, **kwargs)
        if rewritten is None:
            _set_untraced(_untraced + 1)
        else:
            _exec_children.append(pid)
        return pid

    spawn.__doc__ = real.__doc__
    spawn.__name__ = real.__name__
    spawn._memtrace = True  # type: ignore[attr-defined]
    return spawn


def _trace_forked_child() -> None:
    """Runs in the child right after fork (the parent's tracing stopped there, in C): start
    again into a capture of its own. Never raises into the program: a child that cannot be
    traced runs on untraced."""
    settings = _follow
    if settings is None:
        return
    from memtrace_core.sampling import seed_from_env
    from memtrace_core.tracer import _tracer
    from memtrace_core.tracer.header import header_record

    pid = os.getpid()
    try:
        fd = os.open(f"{settings.output}.{pid}",
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    except OSError:
        return
    from memtrace_core.capture import take_writer_lock

    take_writer_lock(fd)
    header = dict(settings.header, pid=pid, parent_pid=os.getppid(), start_time=time.time(),
                  argv=[sys.executable, *sys.argv])
    try:
        _tracer.start(fd, settings.native, settings.python_allocators, header_record(header),
                      settings.compress, sample_bytes=header.get("sample_bytes", 0),
                      sample_seed=seed_from_env())
    except Exception:  # noqa: BLE001 - the child runs on untraced
        os.close(fd)
        return
    _tracer.set_root_code(settings.root_code)
    _tracer.set_thread_name(threading.get_native_id(), threading.current_thread().name)
    _set_untraced(0)  # the child's own children from here on


def _starting(pid: int) -> bool:
    """PID is alive (not a zombie): a child that may still create its capture."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def wait_for_exec_children(output: str, timeout: float = 5.0) -> None:
    """Wait (at most TIMEOUT seconds) until every child started by exec that still runs has
    created its capture: an interpreter starting up on a loaded machine (multiprocessing's
    resource tracker, a forkserver) can be slower than the whole parent program, and the
    parent's list of its children's captures must not miss it."""
    deadline = time.monotonic() + timeout
    for pid in _exec_children:
        while (not os.path.exists(f"{output}.{pid}") and _starting(pid)
               and time.monotonic() < deadline):
            time.sleep(0.01)


def child_captures(output: str) -> list[str]:
    """The captures of traced children next to OUTPUT (OUTPUT.PID), by pid."""
    import glob

    found = [path for path in glob.glob(glob.escape(output) + ".*")
             if path[len(output) + 1:].isdigit()]
    return sorted(found, key=lambda path: int(path[len(output) + 1:]))


# ---- children started by exec ----------------------------------------------------------

_SKIP_FLAGS = frozenset("EIS")  # environment ignored, isolated, no site: memtrace not found
_NO_PROGRAM_FLAGS = frozenset("hV?")


def split_python_command_line(args: list[str]) -> tuple[list[str], list[str]] | None:
    """(interpreter options, program part) of a python command line without argv[0]; the
    program part is what memtrace's runner takes (script, -m module, -c code, -, --). None:
    no program to trace (the REPL, --help, --version) or a flag memtrace cannot run under."""
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--" or token == "-" or not token.startswith("-"):
            return args[:i], args[i:]
        if token.startswith("--"):
            if token == "--check-hash-based-pycs":
                i += 2
                continue
            return None
        for j in range(1, len(token)):
            switch = token[j]
            if switch in "cm":
                options = args[:i] + ([token[:j]] if j > 1 else [])
                value = [token[j + 1:]] if token[j + 1:] else []
                return options, [f"-{switch}", *value, *args[i + 1:]]
            if switch in _SKIP_FLAGS or switch in _NO_PROGRAM_FLAGS:
                return None
            if switch in "WX":
                if j == len(token) - 1:
                    i += 1  # the value is the next token
                break
        i += 1
    return None


def _is_this_python(path: str) -> bool:
    """This interpreter, in this environment (same directory: a base interpreter outside a
    virtualenv would not find memtrace)."""
    try:
        path = os.path.abspath(path)
        return (os.path.dirname(path) == os.path.dirname(os.path.abspath(sys.executable))
                and os.path.realpath(path) == os.path.realpath(sys.executable))
    except (OSError, ValueError):
        return False


def traced_command_line(argv: list, executables: list) -> list[str] | None:
    """ARGV rewritten to run through memtrace's runner, or None to run it as it is."""
    settings = _follow
    if settings is None or not argv or not executables:
        return None
    if not _is_this_python(os.fsdecode(executables[0])):
        return None
    tokens = [os.fsdecode(a) for a in argv]
    split = split_python_command_line(tokens[1:])
    if split is None:
        return None
    options, program = split
    ours = ["-m", "memtrace_core.tracer.runner", "--capture-prefix", settings.output]
    if settings.native:
        ours.append("--native")
    if settings.python_allocators:
        ours.append("--trace-python-allocators")
    if settings.header.get("sample_bytes"):
        ours += ["--sample", str(settings.header["sample_bytes"])]
    return [tokens[0], *options, *ours, *program]


def _wrap_fork_exec() -> None:
    """Route exec'd Python children through the runner (subprocess and multiprocessing both
    start processes with _posixsubprocess.fork_exec)."""
    try:
        import _posixsubprocess
    except ImportError:
        return
    real = _posixsubprocess.fork_exec
    if getattr(real, "_memtrace", False):
        return

    def fork_exec(args: list, executable_list: list, *rest: object,
                  **kwargs: object) -> int:
        try:
            rewritten = traced_command_line(list(args), list(executable_list or ()))
        except Exception:  # noqa: BLE001 - the child then runs as it is
            rewritten = None
        pid = real(rewritten if rewritten is not None else args, executable_list, *rest,
                   **kwargs)
        if rewritten is None:
            _set_untraced(_untraced + 1)
        else:
            _exec_children.append(pid)
        return pid

    fork_exec._memtrace = True  # type: ignore[attr-defined]
    _posixsubprocess.fork_exec = fork_exec
    subprocess = sys.modules.get("subprocess")
    if subprocess is not None and getattr(subprocess, "_fork_exec", None) is real:
        subprocess._fork_exec = fork_exec  # type: ignore[attr-defined]
