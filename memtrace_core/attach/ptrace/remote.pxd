# Cython view of remote.h (memtrace's ptrace injector); see that header for the contract.
from libc.stdint cimport uint64_t
from posix.types cimport pid_t


cdef extern from "remote.h":
    enum:
        MT_REMOTE_OK
        MT_REMOTE_ESYS
        MT_REMOTE_EGONE
        MT_REMOTE_ETIMEOUT
        MT_REMOTE_ECRASH
        MT_REMOTE_ESTOPPED
        MT_REMOTE_EARCH
        MT_REMOTE_MAX_PENDING

    ctypedef struct mt_remote:
        pid_t pid
        pid_t tid
        int seized
        int stopped
        int err
        size_t xstate_len
        int xstate_is_fpregs
        int pending[64]
        int npending
        int in_syscall
        long syscall_nr
        char error[256]

    int mt_remote_seize(mt_remote *t, pid_t pid, pid_t tid, int timeout_ms) nogil
    uint64_t mt_remote_ip(const mt_remote *t) nogil
    uint64_t mt_remote_sp(const mt_remote *t) nogil
    int mt_remote_backtrace(mt_remote *t, uint64_t *ips, int max) nogil
    int mt_remote_read(mt_remote *t, uint64_t addr, void *buf, size_t len) nogil
    int mt_remote_write(mt_remote *t, uint64_t addr, const void *buf, size_t len) nogil
    int mt_remote_syscall(mt_remote *t, uint64_t insn, long nr, const long args[6],
                          long *result, int timeout_ms) nogil
    int mt_remote_call(mt_remote *t, uint64_t trampoline, uint64_t fn, const long args[6],
                       uint64_t stack_top, long *result, int timeout_ms) nogil
    int mt_remote_release(mt_remote *t) nogil
    long mt_remote_xsave_size() nogil
    const unsigned char *mt_remote_trampoline(size_t *len) nogil
