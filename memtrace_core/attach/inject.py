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
