"""memtrace's own injection (the default attach method): load the helper library into a
running process and start its thread, with ptrace and nothing else.

Steps, while every other thread of the target keeps running:
1. Before stopping anything: read the target's mappings, find dlopen/dlsym/dlerror and a
   `syscall` instruction in its C library (image.py), load the C library's names for the
   stack check (safepoint.py).
2. Seize one thread (PTRACE_SEIZE + PTRACE_INTERRUPT, no SIGSTOP), blocked-in-a-syscall
   ones first; unwind its stack; let it go again if it is inside the allocator, the loader
   or an unwinder, and try the next.
3. In the chosen thread: a remote `mmap` through libc's own `syscall` instruction gives a
   private page for the trampoline (`call *%rax; int3`, then made read+execute) and a
   256 KiB stack; a second mapping holds the job (helper path, symbol, the agent's code).
   Then dlopen(helper), dlsym(spawn), spawn(job): spawn only starts a thread, which takes the
   GIL the normal way and unmaps the job when done.
4. Unmap the trampoline and stack, restore the extended register state, then the general
   registers (an interrupted system call restarts), re-raise signals that arrived, detach.

Nothing is written outside the pages mapped here. The result has the gdb method's shape:
{"ok": True, "thread": tid, "stopped_ms": ...} or {"ok": False, "kind": ..., "message": ...}.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from memtrace_core.attach.image import LoaderFunctions, find_loader_functions, read_image
from memtrace_core.attach.safepoint import StackJudge, threads

# x86_64 Linux system call numbers and flags (the architecture-specific part in Python)
SYS_MMAP, SYS_MPROTECT, SYS_MUNMAP = 9, 10, 11
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
RTLD_NOW = 2
PAGE = 4096
STACK = 256 * 1024
RESERVED = 64  # the job page's first bytes belong to the helper (spawn.c)
SEIZE_TIMEOUT_MS = 1000
CALL_TIMEOUT_MS = 10_000
SUPPORTED_MACHINES = ("x86_64", "amd64")


class InjectFailed(Exception):
    """A step in the target failed; kind as in the result dict."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def inject(pid: int, job: dict[str, Any], deadline: float) -> dict[str, Any]:
    """Load job["helper"] into process pid and call job["symbol"](page, size, code)."""
    if platform.machine().lower() not in SUPPORTED_MACHINES:
        return {"ok": False, "kind": "arch",
                "message": f"attach supports x86_64 only (this is {platform.machine()})"}
    from memtrace_core.attach.ptrace import _ptrace

    image = read_image(pid)
    funcs = find_loader_functions(image)
    judge = StackJudge(image)
    unsafe: list[str] = []
    for info in threads(pid):
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            break
        try:
            thread = _ptrace.RemoteThread(pid, info.tid, min(SEIZE_TIMEOUT_MS, left_ms))
        except _ptrace.RemoteError as exc:
            if exc.code in (_ptrace.GONE, _ptrace.TIMEOUT):
                continue  # exited meanwhile, or stuck in uninterruptible sleep: another one
            return _failure(exc, pid)
        t0 = time.monotonic()
        try:
            with thread:
                where = judge.unsafe_frame(thread.backtrace())
                if where is not None:
                    unsafe.append(f"{info.tid} in {where}")
                    continue
                result = _load_helper(thread, funcs, job, deadline)
        except _ptrace.RemoteError as exc:
            return _failure(exc, pid)
        except InjectFailed as exc:
            return {"ok": False, "kind": exc.kind, "message": str(exc)}
        result["stopped_ms"] = (time.monotonic() - t0) * 1000
        return result
    return {"ok": False, "kind": "busy",
            "message": "every thread is inside the allocator or loader"
                       + (f" ({', '.join(unsafe[:3])})" if unsafe else "")}


def _failure(exc: Any, pid: int) -> dict[str, Any]:
    from memtrace_core.attach.ptrace import _ptrace

    if exc.code == _ptrace.GONE:
        return {"ok": False, "kind": "gone", "message": f"process {pid} exited during attach"}
    if exc.code == _ptrace.SYSTEM and "Operation not permitted" in str(exc):
        from memtrace_core.attach.target import ptrace_hint

        return {"ok": False, "kind": "attach",
                "message": f"ptrace not permitted for process {pid}: {ptrace_hint()}"}
    if exc.code == _ptrace.STOPPED:
        return {"ok": False, "kind": "stopped",
                "message": f"process {pid} was stopped by job control; resume it first "
                           f"(kill -CONT {pid})"}
    return {"ok": False, "kind": "inject", "message": f"injection failed: {exc}"}


def _call_ms(deadline: float) -> int:
    return max(100, min(CALL_TIMEOUT_MS, int((deadline - time.monotonic()) * 1000)))


def _mmap(thread: Any, funcs: LoaderFunctions, size: int) -> int:
    address = thread.syscall(funcs.syscall_insn, SYS_MMAP,
                             (0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                              -1, 0))
    if -4096 < address < 0 or address & (PAGE - 1):
        raise InjectFailed("inject", f"mmap failed in the target: {os.strerror(-address)}"
                           if address < 0 else "mmap failed in the target")
    return address


def _c_string(thread: Any, address: int, limit: int = 512) -> str:
    data = b""
    try:
        data = thread.read(address, limit)
    except Exception:  # noqa: BLE001 - near the end of a mapping: read less
        for size in (128, 32):
            try:
                data = thread.read(address, size)
                break
            except Exception:  # noqa: BLE001
                continue
    return data.split(b"\0", 1)[0].decode("utf-8", "replace")


def _load_helper(thread: Any, funcs: LoaderFunctions, job: dict[str, Any],
                 deadline: float) -> dict[str, Any]:
    from memtrace_core.attach.ptrace import _ptrace

    helper = job["helper"].encode() + b"\0"
    symbol = job["symbol"].encode() + b"\0"
    code = job["code"].encode() + b"\0"
    region = PAGE + STACK
    base = _mmap(thread, funcs, region)
    try:
        thread.write(base, _ptrace.trampoline_bytes())
        rc = thread.syscall(funcs.syscall_insn, SYS_MPROTECT, (base, PAGE, PROT_READ | PROT_EXEC))
        if rc != 0:
            raise InjectFailed("inject", f"mprotect failed in the target: {os.strerror(-rc)}")
        stack_top = base + region

        def call(fn: int, *args: int) -> int:
            return thread.call(base, fn, args, stack_top, _call_ms(deadline))

        size = (RESERVED + len(helper) + len(symbol) + len(code) + PAGE - 1) // PAGE * PAGE
        page = _mmap(thread, funcs, size)
        handed_over = False
        try:
            p_helper = page + RESERVED
            p_symbol = p_helper + len(helper)
            p_code = p_symbol + len(symbol)
            thread.write(p_helper, helper + symbol + code)
            handle = call(funcs.dlopen, p_helper, RTLD_NOW)
            if handle == 0:
                message = "dlopen failed"
                if funcs.dlerror:
                    err = call(funcs.dlerror)
                    if err:
                        message = _c_string(thread, err)
                raise InjectFailed("helper", message)
            spawn = call(funcs.dlsym, handle, p_symbol)
            if spawn == 0:
                raise InjectFailed("helper", "helper has no spawn function")
            status = call(spawn, page, size, p_code) & 0xFFFFFFFF
            if status:
                raise InjectFailed("inject", f"pthread_create failed: {os.strerror(status)}")
            handed_over = True  # the helper's thread unmaps the job page when done
            return {"ok": True, "thread": thread.tid}
        finally:
            if not handed_over:
                _unmap(thread, funcs, page, size)
    finally:
        _unmap(thread, funcs, base, region)


def _unmap(thread: Any, funcs: LoaderFunctions, address: int, size: int) -> None:
    from memtrace_core.attach.ptrace import _ptrace

    try:
        thread.syscall(funcs.syscall_insn, SYS_MUNMAP, (address, size))
    except _ptrace.RemoteError:
        pass  # the thread or process is gone: nothing left to unmap
