# cython: language_level=3
"""Python face of memtrace's ptrace injector (remote.c): one seized thread of a running
process, calls made in it, and its exact state given back on release.

Every method of one RemoteThread must be called from the same OS thread (ptrace belongs to
the thread that seized), which is why the whole injection runs in one call chain."""

from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc

from memtrace_core.attach.ptrace.remote cimport *


class RemoteError(Exception):
    """A ptrace step failed; `code` says how (gone, timeout, crash, stopped, ...)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


GONE = MT_REMOTE_EGONE
TIMEOUT = MT_REMOTE_ETIMEOUT
CRASH = MT_REMOTE_ECRASH
STOPPED = MT_REMOTE_ESTOPPED
UNSUPPORTED = MT_REMOTE_EARCH
SYSTEM = MT_REMOTE_ESYS


def xsave_size():
    """Bytes of this CPU's XSAVE area for the enabled features (0 where unknown)."""
    return mt_remote_xsave_size()


def trampoline_bytes():
    """`call *%rax; int3`: what a remote call jumps through."""
    cdef size_t n = 0
    cdef const unsigned char *p = mt_remote_trampoline(&n)
    return bytes(p[:n]) if n else b""


cdef class RemoteThread:
    """A thread seized with PTRACE_SEIZE + PTRACE_INTERRUPT; use as a context manager (the
    exit restores it and detaches, whatever happened)."""

    cdef mt_remote t
    cdef bint _open

    def __cinit__(self):
        self._open = False

    def __init__(self, int pid, int tid, int timeout_ms=2000):
        cdef int rc
        with nogil:
            rc = mt_remote_seize(&self.t, pid, tid, timeout_ms)
        self._open = True
        if rc != MT_REMOTE_OK:
            message = self._message()
            mt_remote_release(&self.t)
            self._open = False
            raise RemoteError(rc, message)

    def _message(self):
        return (<bytes>self.t.error).decode("utf-8", "replace")

    cdef _check(self, int rc):
        if rc != MT_REMOTE_OK:
            raise RemoteError(rc, self._message())

    @property
    def tid(self):
        return self.t.tid

    @property
    def ip(self):
        return mt_remote_ip(&self.t)

    @property
    def sp(self):
        return mt_remote_sp(&self.t)

    @property
    def in_syscall(self):
        """The thread stopped inside a system call (which restarts on release)."""
        return bool(self.t.in_syscall)

    @property
    def syscall_nr(self):
        return self.t.syscall_nr

    @property
    def xstate_size(self):
        """Bytes of extended register state saved (the kernel's XSAVE size, or the FXSAVE
        area where the kernel offers no NT_X86_XSTATE)."""
        return self.t.xstate_len

    @property
    def pending_signals(self):
        return [self.t.pending[i] for i in range(self.t.npending)]

    def backtrace(self, int limit=64):
        """Innermost-first return addresses (libunwind over ptrace)."""
        cdef uint64_t *ips = <uint64_t *>malloc(sizeof(uint64_t) * max(limit, 1))
        cdef int n
        if ips == NULL:
            raise MemoryError
        try:
            with nogil:
                n = mt_remote_backtrace(&self.t, ips, limit)
            self._check(n if n < 0 else MT_REMOTE_OK)
            return [ips[i] for i in range(n)]
        finally:
            free(ips)

    def read(self, uint64_t address, size_t size):
        buf = bytearray(size)
        cdef unsigned char[:] view = buf
        if size:
            self._check(mt_remote_read(&self.t, address, &view[0], size))
        return bytes(buf)

    def write(self, uint64_t address, const unsigned char[:] data):
        if len(data):
            self._check(mt_remote_write(&self.t, address, &data[0], len(data)))

    def syscall(self, uint64_t insn, long nr, args=(), int timeout_ms=2000):
        """Run system call `nr` through the `syscall` instruction at `insn`; its return."""
        cdef long a[6]
        cdef long result = 0
        cdef int rc
        _fill(a, args)
        with nogil:
            rc = mt_remote_syscall(&self.t, insn, nr, a, &result, timeout_ms)
        self._check(rc)
        return result

    def call(self, uint64_t trampoline, uint64_t fn, args=(), uint64_t stack_top=0,
             int timeout_ms=10000):
        """Call fn(*args) (integers/pointers) on the private stack; its return value."""
        cdef long a[6]
        cdef long result = 0
        cdef int rc
        _fill(a, args)
        with nogil:
            rc = mt_remote_call(&self.t, trampoline, fn, a, stack_top, &result, timeout_ms)
        self._check(rc)
        return result

    def release(self):
        """Restore the saved state and detach (idempotent)."""
        cdef int rc = MT_REMOTE_OK
        if self._open:
            self._open = False
            with nogil:
                rc = mt_remote_release(&self.t)
            self._check(rc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.release()
        except RemoteError:
            if exc[0] is None:
                raise
        return False

    def __dealloc__(self):
        if self._open:
            mt_remote_release(&self.t)


cdef void _fill(long *a, args) except *:
    if len(args) > 6:
        raise ValueError("at most 6 arguments")
    for i in range(6):
        a[i] = <long>(args[i] if i < len(args) else 0)
