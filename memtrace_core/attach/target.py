"""Checks on the process to attach to, before gdb touches it: it exists, runs a CPython whose
version and ABI match this memtrace's build, and may be ptraced by us.

Everything is read from /proc (exe, maps, status), so a failed check leaves the target
untouched. Each failure is one line that says how to fix it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass

from memtrace_core.errors import UserError

# The tracer reads the interpreter's frame layout of these versions (tracer/pystack.c).
SUPPORTED = ((3, 10), (3, 11), (3, 12), (3, 13))
_LIBPYTHON = re.compile(r"/libpython(\d+)\.(\d+)([a-z]*)\.so")
_EXE_NAME = re.compile(r"^python(\d+)\.(\d+)([a-z]*)$")
YAMA = "/proc/sys/kernel/yama/ptrace_scope"


@dataclass(frozen=True)
class Target:
    """A process that passed the checks."""

    pid: int
    exe: str
    comm: str
    uid: int
    version: tuple[int, int]


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _status_fields(pid: int) -> dict[str, str]:
    fields = {}
    for line in _read(f"/proc/{pid}/status").splitlines():
        key, _, rest = line.partition(":")
        fields[key] = rest.strip()
    return fields


def python_of(maps: str, exe: str) -> tuple[int, int, str] | None:
    """(major, minor, abiflags) of the CPython in a process, from its maps and executable
    name; None when neither shows a CPython."""
    match = _LIBPYTHON.search(maps)
    if match is None:
        match = _EXE_NAME.match(os.path.basename(exe))
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), match.group(3)


def _version_from_exe(exe: str) -> tuple[int, int, str] | None:
    """Ask an executable named like python3 for its version (no libpython in its maps)."""
    try:
        out = subprocess.run(
            [exe, "-S", "-E", "-c", "import sys; print(*sys.version_info[:2], sys.abiflags)"],
            capture_output=True, text=True, timeout=5,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    if len(out) < 2 or not out[0].isdigit() or not out[1].isdigit():
        return None
    return int(out[0]), int(out[1]), out[2] if len(out) > 2 else ""


def _elf_machine(path: str) -> bytes | None:
    """ELF class + e_machine bytes: enough to tell x86-64 from i386 or aarch64."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return head[4:5] + head[18:20]


def _has_cap_sys_ptrace() -> bool:
    """CAP_SYS_PTRACE in our effective set (root normally has it, containers may not)."""
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 19 & 1)
    return False


def _check_ptrace(pid: int, uid: int, comm: str) -> None:
    """Fail early where the kernel would refuse gdb's PTRACE_ATTACH."""
    scope = yama_scope()
    if scope is not None and scope >= 3:
        raise UserError(f"ptrace not permitted: {YAMA} is {scope} (ptrace disabled until reboot)")
    if _has_cap_sys_ptrace():
        return
    if uid != os.geteuid():
        raise UserError(
            f"ptrace not permitted: process {pid} ({comm}) belongs to another user "
            f"(uid {uid}) and memtrace lacks CAP_SYS_PTRACE; run memtrace as that user or "
            f"as root"
        )
    # Scope 1 still lets us trace a process that named us with PR_SET_PTRACER: gdb decides,
    # and its failure is explained by ptrace_hint().
    if scope == 2:
        raise UserError(f"ptrace not permitted: {YAMA} is 2 (admin only); run memtrace as root")


def _maps_denied_hint(pid: int, uid: int) -> str:
    """Why the kernel hid a process's maps from us, once _check_ptrace found nothing against
    it: the usual advice (its user, or root) is wrong for root, or for its own user."""
    if _has_cap_sys_ptrace() or os.geteuid() == 0:
        return ptrace_hint()
    try:
        # The kernel gives a non-dumpable process's /proc files to root.
        hidden = uid != 0 and os.stat(f"/proc/{pid}/maps").st_uid == 0
    except OSError:
        hidden = False
    if hidden:
        return "it is not dumpable (setuid, or prctl PR_SET_DUMPABLE 0): run memtrace as root"
    return "run memtrace as the process's user or as root"


def yama_scope() -> int | None:
    try:
        return int(_read(YAMA).strip())
    except (OSError, ValueError):
        return None


def ptrace_hint() -> str:
    """How to get ptrace permission here, for gdb's "Operation not permitted"."""
    if _has_cap_sys_ptrace():
        return ("the kernel refuses even with CAP_SYS_PTRACE: a security policy (AppArmor, "
                "SELinux, seccomp, a sandbox) forbids it")
    if os.geteuid() == 0:
        return ("memtrace runs as root without CAP_SYS_PTRACE: give it the capability (a "
                "container needs --cap-add SYS_PTRACE)")
    if yama_scope() == 1:
        return (f"{YAMA} is 1 (only a parent may trace its children): run memtrace as root "
                f"(sudo), or allow it until reboot with `echo 0 | sudo tee {YAMA}`")
    return ("run memtrace as the process's user or as root (a container may also need "
            "--cap-add SYS_PTRACE)")


def inspect(pid: int) -> Target:
    """Check the process and describe it, or raise UserError (one line)."""
    if pid <= 0:
        raise UserError(f"invalid PID {pid}")
    if pid == os.getpid():
        raise UserError("memtrace cannot attach to itself")
    try:
        status = _status_fields(pid)
    except FileNotFoundError:
        raise UserError(f"no process with PID {pid}") from None
    except OSError as exc:
        raise UserError(f"cannot inspect process {pid}: {exc.strerror}") from None
    comm = status.get("Name", "?")
    uid = int(status.get("Uid", "0").split()[0])
    state = status.get("State", "")
    if state.startswith(("Z", "X")):
        raise UserError(f"process {pid} ({comm}) has exited")
    tracer = int(status.get("TracerPid", "0") or 0)
    if tracer:
        raise UserError(
            f"process {pid} ({comm}) is already being traced by process {tracer} "
            f"(a debugger?); detach it first"
        )
    if state.startswith(("T", "t")):
        raise UserError(f"process {pid} ({comm}) is stopped; resume it first (kill -CONT {pid})")
    _check_ptrace(pid, uid, comm)
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        maps = _read(f"/proc/{pid}/maps")
    except FileNotFoundError:
        raise UserError(f"process {pid} ({comm}) exited") from None
    except PermissionError:
        raise UserError(
            f"ptrace not permitted: cannot read /proc/{pid}/maps of process {pid} ({comm}); "
            f"{_maps_denied_hint(pid, uid)}"
        ) from None
    if "libpypy" in maps:
        raise UserError(f"process {pid} ({comm}) runs PyPy; memtrace supports CPython only")
    found = python_of(maps, exe)
    if found is None and os.path.basename(exe).startswith("python"):
        found = _version_from_exe(exe)
    if found is None:
        raise UserError(f"process {pid} ({comm}, {exe}) is not a Python process")
    major, minor, flags = found
    version = (major, minor)
    ours = sys.version_info[:2]
    if version not in SUPPORTED:
        raise UserError(
            f"process {pid} runs Python {major}.{minor}, which memtrace does not support "
            f"(CPython {', '.join(f'{a}.{b}' for a, b in SUPPORTED)})"
        )
    if version != ours:
        raise UserError(
            f"process {pid} runs Python {major}.{minor}, but this memtrace is built for "
            f"Python {ours[0]}.{ours[1]}: run memtrace installed for Python {major}.{minor}"
        )
    if flags != sys.abiflags:
        raise UserError(
            f"process {pid} runs a Python {major}.{minor} build with ABI flags {flags!r}, "
            f"but this memtrace is built for {sys.abiflags!r}"
        )
    theirs, mine = _elf_machine(f"/proc/{pid}/exe"), _elf_machine(sys.executable)
    if theirs is not None and mine is not None and theirs != mine:
        raise UserError(f"process {pid} is built for another CPU architecture than memtrace")
    return Target(pid=pid, exe=exe, comm=comm, uid=uid, version=version)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = _status_fields(pid).get("State", "")
    except OSError:
        return False
    return not state.startswith(("Z", "X"))
