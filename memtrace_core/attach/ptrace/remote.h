/* memtrace's own ptrace injector: seize one thread of a running process, make calls in it,
 * and leave it exactly as it was (general registers, the whole extended register state at
 * the size the kernel reports, an interrupted system call that restarts, signals that
 * arrived meanwhile delivered once).
 *
 * Why not a debugger: gdb 13 keeps the XSAVE area in a fixed 2,696-byte buffer; on CPUs with
 * AMX (an 11,008-byte area) the kernel refuses its write-back, and the target's interrupted
 * system call then returns -ERESTART... to user code. Here the buffer is as large as the
 * kernel says.
 *
 * Every function runs in the memtrace process, on the thread that seized the target thread
 * (ptrace is per tracer thread). Errors: a negative MT_REMOTE_* code, with a one-line message
 * in t->error. Only x86_64 is implemented; the architecture-specific part is the register
 * block in remote.c marked ARCH. */
#ifndef MEMTRACE_REMOTE_H
#define MEMTRACE_REMOTE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
    MT_REMOTE_OK = 0,
    MT_REMOTE_ESYS = -1,     /* a system call failed (errno in t->err) */
    MT_REMOTE_EGONE = -2,    /* the thread or process exited */
    MT_REMOTE_ETIMEOUT = -3, /* the thread did not stop, or a call did not return, in time */
    MT_REMOTE_ECRASH = -4,   /* a remote call faulted (the fault was not delivered) */
    MT_REMOTE_ESTOPPED = -5, /* the process was stopped by job control meanwhile */
    MT_REMOTE_EARCH = -6,    /* this CPU architecture is not supported */
};

#define MT_REMOTE_MAX_PENDING 64

typedef struct mt_remote {
    pid_t pid;
    pid_t tid;
    int seized;
    int stopped; /* in a ptrace stop now (only then can it be restored and detached) */
    int mem_fd;
    int err;
    /* the thread's own state, restored by mt_remote_release */
    unsigned char regs[512];   /* struct user_regs_struct on x86_64 */
    unsigned char *xstate;     /* NT_X86_XSTATE at the kernel's size, or user_fpregs_struct */
    size_t xstate_len;
    int xstate_is_fpregs;
    /* signals that arrived while seized: re-raised, once each, before detaching */
    int pending[MT_REMOTE_MAX_PENDING];
    int npending;
    /* true when the thread stopped inside a system call (it restarts on release) */
    int in_syscall;
    long syscall_nr;
    char error[256];
} mt_remote;

/* Seize thread `tid` of process `pid` (PTRACE_SEIZE + PTRACE_INTERRUPT: no SIGSTOP), wait
 * up to timeout_ms for it to stop, save its registers and extended state. */
int mt_remote_seize(mt_remote *t, pid_t pid, pid_t tid, int timeout_ms);

/* Instruction pointer and stack pointer as saved. */
uint64_t mt_remote_ip(const mt_remote *t);
uint64_t mt_remote_sp(const mt_remote *t);

/* Up to `max` return addresses of the thread's stack (innermost first), with libunwind's
 * ptrace accessors; the count (at least 1: the saved ip), or a negative code. */
int mt_remote_backtrace(mt_remote *t, uint64_t *ips, int max);

int mt_remote_read(mt_remote *t, uint64_t addr, void *buf, size_t len);
int mt_remote_write(mt_remote *t, uint64_t addr, const void *buf, size_t len);

/* Execute the `syscall` instruction at `insn` (two bytes 0f 05 in the target) with the
 * given number and arguments, single-stepping over it; *result is the kernel's return. */
int mt_remote_syscall(mt_remote *t, uint64_t insn, long nr, const long args[6], long *result,
                      int timeout_ms);

/* Call fn(args[0..5]) through the trampoline `call *%rax; int3` at `trampoline`, on the
 * stack whose top (16-byte aligned) is `stack_top`; *result is the returned rax. */
int mt_remote_call(mt_remote *t, uint64_t trampoline, uint64_t fn, const long args[6],
                   uint64_t stack_top, long *result, int timeout_ms);

/* Restore the extended state, then the general registers (rax and orig_rax included, so an
 * interrupted system call restarts), re-raise pending signals, detach. Safe to call after
 * any failure, and more than once. */
int mt_remote_release(mt_remote *t);

/* Bytes of the XSAVE area for the features this CPU and kernel enable (CPUID leaf 0xD),
 * 0 where unknown or not x86_64. */
long mt_remote_xsave_size(void);

/* The trampoline's bytes (`call *%rax; int3` on x86_64) and its return offset. */
const unsigned char *mt_remote_trampoline(size_t *len);

#endif
