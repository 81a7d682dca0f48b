"""Run gdb against the target with gdb_inject.py: one short stop of the process that starts
the agent's helper thread (see gdb_inject.py), then detach.

gdb runs in its own session (a Ctrl-C meant for memtrace never interrupts it mid-call), with
no init files, no debuginfod and no auto-loaded scripts. If it does not finish in time it is
interrupted (gdb then unwinds any call it made and detaches), killed as a last resort, and
the target is sent SIGCONT, so it is never left stopped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from typing import Any

from memtrace_core.errors import UserError

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gdb_inject.py")
RESULT_MARK = "@@memtrace-result "


class GdbTimeout(Exception):
    """gdb did not finish before the deadline (it was stopped, the target runs on)."""


def find_gdb() -> str:
    """gdb's path ($MEMTRACE_GDB overrides), or a one-line install hint."""
    override = os.environ.get("MEMTRACE_GDB")
    if override:
        return override
    path = shutil.which("gdb")
    if path is None:
        raise UserError("gdb is not installed; attach needs it: apt-get install gdb "
                        "(dnf install gdb, pacman -S gdb)")
    return path


# gdb before 14 keeps the x86 extended register state in a fixed buffer of this many bytes;
# where the CPU's XSAVE area is larger (AMX: 11,008 bytes) it cannot write the state back
# after an inferior call, and the target's interrupted system call then returns -ERESTART...
GDB_FIXED_XSAVE = 2696
_VERSION = re.compile(r"(\d+)\.(\d+)")


def gdb_version(gdb: str) -> tuple[int, int] | None:
    """(major, minor) from `gdb --version`'s first line, None when it says nothing usable."""
    try:
        out = subprocess.run([gdb, "--version"], capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.splitlines()[0] if out else ""
    found = _VERSION.findall(first)
    return (int(found[-1][0]), int(found[-1][1])) if found else None


def gdb_refusal(version: tuple[int, int] | None, xsave_size: int) -> str | None:
    """Why this gdb must not touch a process on this CPU, or None when it may."""
    if version is None or version >= (14, 0) or xsave_size <= GDB_FIXED_XSAVE:
        return None
    return (f"gdb {version[0]}.{version[1]} cannot restore this CPU's {xsave_size}-byte "
            f"extended register state (it keeps {GDB_FIXED_XSAVE} bytes) and would leave the "
            f"target's interrupted system call failing; use memtrace's own injector (drop "
            f"--method gdb) or GDB 14 or newer")


def check_gdb(gdb: str) -> None:
    """Refuse a gdb that would harm the target on this host (x86_64 only)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return
    from memtrace_core.attach.ptrace import _ptrace

    reason = gdb_refusal(gdb_version(gdb), _ptrace.xsave_size())
    if reason:
        raise UserError(reason)


def _gdb_command(gdb: str, pid: int) -> list[str]:
    return [
        gdb, "-p", str(pid), "-batch", "-nx", "-q",
        "-iex", "set debuginfod enabled off",
        "-iex", "set auto-load off",
        "-iex", "set auto-solib-add off",
        "-x", SCRIPT,
    ]


def _explain_failure(pid: int, output: str) -> str:
    """gdb's own words about a failed attach, as one line for the user."""
    if re.search(r"ptrace: Operation not permitted|Could not attach to process", output):
        from memtrace_core.attach.target import ptrace_hint

        return f"ptrace not permitted for process {pid}: {ptrace_hint()}"
    if "Python scripting is not supported" in output:
        return ("this gdb has no Python support; install the full gdb "
                "(apt-get install gdb, not gdb-minimal)")
    if "No such process" in output:
        return f"process {pid} exited during attach"
    lines = [line for line in output.splitlines() if line.strip()]
    return f"gdb failed to attach to process {pid}: {lines[-1] if lines else 'no output'}"


def run_gdb(pid: int, job: dict[str, Any], deadline: float) -> dict[str, Any]:
    """Inject once; the gdb script's result fields. Raises GdbTimeout or UserError."""
    gdb = find_gdb()
    env = dict(os.environ, MEMTRACE_ATTACH_JOB=json.dumps(job))
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):  # gdb's own Python
        env.pop(name, None)
    try:
        proc = subprocess.Popen(
            _gdb_command(gdb, pid), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, start_new_session=True, text=True,
            errors="replace",
        )
    except OSError as exc:
        raise UserError(f"cannot run gdb ({gdb}): {exc.strerror}") from None
    try:
        output, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _stop_gdb(proc, pid)
        raise GdbTimeout from None
    for line in output.splitlines():
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK):])
            if not result.get("ok") and result.get("kind") == "attach":
                result["message"] = _explain_failure(pid, output)
            return result
    return {"ok": False, "kind": "attach", "message": _explain_failure(pid, output)}


def _stop_gdb(proc: subprocess.Popen, pid: int) -> None:
    """Interrupt gdb (it unwinds its call and detaches), kill it if that fails, and make
    sure the target is not left stopped."""
    for sig, wait in ((signal.SIGINT, 2.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.communicate(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
