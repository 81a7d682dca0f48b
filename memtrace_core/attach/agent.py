"""The agent: the part of attach that runs inside the target, on the helper thread.

It starts the tracer into the private FIFO (`attach`) or stops it (`detach`) and writes the
outcome to a status file next to the FIFO, which the CLI turns into a one-line error. It runs
with the GIL held in a thread of its own, touches only the tracer, and undoes everything it
changed in the target on detach: the hooks, the thread-name wrapper, the atexit handler and
the channel's fd. Imported inside someone else's process: keep it small and boring.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from typing import Any

AGENT_THREAD_NAME = "memtrace-attach"


class _State:
    """What the current attachment changed in this process (to undo on detach)."""

    fd: int = -1
    bootstrap_original: Any = None
    bootstrap_wrapper: Any = None


_state = _State()


def write_status(path: str, ok: bool, message: str = "", kind: str = "") -> None:
    """Write the outcome atomically (the CLI polls for the file)."""
    tmp = f"{path}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "w", encoding="utf-8") as f:
            json.dump({"ok": ok, "message": message, "kind": kind, "pid": os.getpid()}, f)
        os.replace(tmp, path)
    except OSError:
        pass  # the CLI went away and removed its directory


def handle(request: dict[str, Any]) -> None:
    """Entry point from the bootstrap code: never raises."""
    status = request["status"]
    try:
        if request["action"] == "attach":
            note = _note()  # before tracing starts: its calls are not the program's
            _attach(request)
        else:
            _detach()
            note = _note()
        write_status(status, True, note)
    except _AgentError as exc:
        write_status(status, False, str(exc), exc.kind)
    except BaseException as exc:  # noqa: BLE001 - the target must never see our errors
        write_status(status, False, f"{type(exc).__name__}: {exc}".splitlines()[0], "agent")


class _AgentError(Exception):
    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def _tracer_module() -> Any:
    from memtrace_core.tracer import _tracer

    return _tracer


def _cleanup_failed(tracer: Any) -> None:
    """A previous reader went away (EPIPE): the tracer unhooked itself; finish the job."""
    if tracer.failed():
        tracer.stop()
        tracer.release()
    _restore()


def _attach(request: dict[str, Any]) -> None:
    tracer = _tracer_module()
    if tracer.active():
        raise _AgentError(f"process {os.getpid()} is already traced by memtrace", "traced")
    _cleanup_failed(tracer)
    try:
        fd = os.open(request["fifo"], os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:  # ENXIO: no reader any more; ENOENT: the CLI cleaned up
        raise _AgentError(f"memtrace went away ({exc.strerror})", "channel") from None
    os.set_blocking(fd, True)  # back-pressure reaches the program, records are never dropped

    from memtrace_core.tracer import runner

    argv = list(getattr(sys, "argv", None) or [""])
    program = runner.Program(argv[0], argv[1:])
    header = runner.header_fields(
        program, request["native"], request["python_allocators"], attached=True,
        sample_bytes=request.get("sample_bytes", 0),
    )
    me = threading.get_ident()
    had_thread_object = me in threading._active  # type: ignore[attr-defined]
    original = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]
    try:
        runner.start_tracing(fd, header, request["native"], request["python_allocators"],
                             sample_seed=request.get("sample_seed", 0))
    except BaseException as exc:
        os.close(fd)
        message = str(exc)
        if "already tracing" in message:
            raise _AgentError(f"process {os.getpid()} is already traced by memtrace",
                              "traced") from None
        raise _AgentError(message, "tracer") from None
    finally:
        if not had_thread_object:  # start_tracing's current_thread() made a _DummyThread
            threading._active.pop(me, None)  # type: ignore[attr-defined]
    _state.fd = fd
    _state.bootstrap_original = original
    _state.bootstrap_wrapper = _name_new_threads(tracer, original)
    threading.Thread._bootstrap_inner = _state.bootstrap_wrapper  # type: ignore[attr-defined]
    tracer.set_thread_name(threading.get_native_id(), AGENT_THREAD_NAME)
    for thread in threading.enumerate():
        if thread.native_id is not None:
            tracer.set_thread_name(thread.native_id, thread.name)


def _name_new_threads(tracer: Any, original: Any) -> Any:
    """Replaces the runner's thread-naming wrapper with one that removes itself once tracing
    has ended without a detach (memtrace killed: the tracer stopped on the closed FIFO)."""

    def _bootstrap_inner(self: threading.Thread) -> None:
        try:
            if tracer.active():
                tracer.set_thread_name(threading.get_native_id(), self.name)
            elif threading.Thread._bootstrap_inner is _bootstrap_inner:  # type: ignore[attr-defined]
                threading.Thread._bootstrap_inner = original  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - never break the program's threads
            pass
        original(self)

    return _bootstrap_inner


def _note() -> str:
    """What the figures cannot show (tracer/pools.py), for the CLI to say; "" if nothing.
    Reads a library's figures only, outside tracing (before attach's records flow, or
    after detach's stop), never to the program's harm."""
    try:
        from memtrace_core.tracer.pools import arrow_pool_note

        return arrow_pool_note(attached=True) or ""
    except Exception:  # noqa: BLE001 - a note is never worth an error
        return ""


def _detach() -> None:
    tracer = _tracer_module()
    tracer.set_thread_name(threading.get_native_id(), AGENT_THREAD_NAME)
    tracer.stop()
    tracer.release()  # the program runs on: it keeps none of the recorder's memory
    _restore()


def _restore() -> None:
    """Undo what attach changed: thread-name wrapper, atexit handler, channel fd."""
    from memtrace_core.tracer import runner

    if _state.bootstrap_wrapper is not None:
        if threading.Thread._bootstrap_inner is _state.bootstrap_wrapper:  # type: ignore[attr-defined]
            threading.Thread._bootstrap_inner = _state.bootstrap_original  # type: ignore[attr-defined]
        _state.bootstrap_wrapper = None
        _state.bootstrap_original = None
    atexit.unregister(runner._stop_at_exit)
    if _state.fd >= 0:
        try:
            os.close(_state.fd)
        except OSError:
            pass
        _state.fd = -1


BOOTSTRAP = '''
def _memtrace_bootstrap(root, request):
    import os, sys
    # First, tell memtrace that this thread runs (it then waits for the outcome, however
    # loaded the machine). No channel any more: memtrace gave up; change nothing.
    try:
        os.close(os.open(request["started"], os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except OSError:
        return
    # Nothing is written into the copy: a helper thread still importing when memtrace gives
    # up would otherwise recreate the removed channel directory for its bytecode cache.
    # (While it imports, the program's own imports write no cache either.)
    cache = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        _memtrace_run(root, request)
    finally:
        sys.dont_write_bytecode = cache
def _memtrace_run(root, request):
    import os, sys
    try:
        core = sys.modules.get("memtrace_core")
        if core is None or getattr(core, "__memtrace_copy__", None) is not None:
            # memtrace's checked copy in the channel directory, and nothing else: no sys.path
            # entry is searched. Packages a previous attach imported from its own (removed)
            # copy now look in this one.
            import importlib.machinery, importlib.util
            for name, module in list(sys.modules.items()):
                if name == "memtrace_core" or name.startswith("memtrace_core."):
                    path = getattr(module, "__path__", None)
                    if path is not None:
                        path[:] = [os.path.join(root, *name.split("."))]
            if core is None:
                spec = importlib.machinery.PathFinder.find_spec("memtrace_core", [root])
                if spec is None:
                    raise ImportError("no memtrace_core in " + root)
                core = importlib.util.module_from_spec(spec)
                sys.modules["memtrace_core"] = core
                try:
                    spec.loader.exec_module(core)
                except BaseException:
                    del sys.modules["memtrace_core"]
                    raise
            core.__memtrace_copy__ = root
        from memtrace_core.attach import agent
    except BaseException as exc:
        try:
            import json
            with open(request["status"] + ".tmp", "w") as f:
                json.dump({"ok": False, "kind": "import", "pid": os.getpid(),
                           "message": "cannot import memtrace in the target: %s: %s"
                           % (type(exc).__name__, exc)}, f)
            os.replace(request["status"] + ".tmp", request["status"])
        except BaseException:
            pass
        return
    agent.handle(request)
_memtrace_bootstrap(ROOT_REPR, REQUEST_REPR)
'''


def bootstrap_code(root: str, request: dict[str, Any]) -> str:
    """The code the helper thread runs (PyRun_SimpleString in `__main__`): everything happens
    in a private namespace, so the program's `__main__` gains no names. `root` is the checked
    copy of memtrace's modules (trust.py), the only place they are imported from."""
    source = BOOTSTRAP.replace("ROOT_REPR", repr(root)).replace("REQUEST_REPR", repr(request))
    return f"exec(compile({source!r}, '<memtrace attach>', 'exec'), {{}})"
