/* memtrace's ptrace injector (see remote.h for the contract and why it exists). */
#define _GNU_SOURCE
#include "remote.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <elf.h>
#include <libunwind-ptrace.h>
#include <sys/user.h>

/* ---- ARCH: x86_64 register block -------------------------------------------------------- */
typedef struct user_regs_struct mt_regs;
_Static_assert(sizeof(mt_regs) <= sizeof(((mt_remote *)0)->regs), "register block too small");
#define REG_IP(r) ((r)->rip)
#define REG_SP(r) ((r)->rsp)
#define REG_RET(r) ((r)->rax)
#define REG_SYSNR(r) ((long)(r)->orig_rax)
#define XSTATE_MAX (64 * 1024) /* above every XSAVE layout (AMX: 11,008 bytes) */
#define EFLAGS_TF 0x100
#define EFLAGS_DF 0x400
static const unsigned char TRAMPOLINE[] = {0xff, 0xd0, 0xcc}; /* call *%rax; int3 */

static void set_syscall_regs(mt_regs *r, uint64_t insn, long nr, const long a[6]) {
    r->rip = insn;
    r->rax = (unsigned long)nr;
    r->rdi = a[0];
    r->rsi = a[1];
    r->rdx = a[2];
    r->r10 = a[3];
    r->r8 = a[4];
    r->r9 = a[5];
    r->orig_rax = (unsigned long)-1; /* no restart logic for what we run */
    r->eflags &= ~(EFLAGS_TF | EFLAGS_DF);
}

static void set_call_regs(mt_regs *r, uint64_t trampoline, uint64_t fn, const long a[6],
                          uint64_t stack_top) {
    r->rip = trampoline;
    r->rax = fn;
    r->rdi = a[0];
    r->rsi = a[1];
    r->rdx = a[2];
    r->rcx = a[3];
    r->r8 = a[4];
    r->r9 = a[5];
    r->rsp = stack_top & ~(uint64_t)15; /* `call` pushes 8: the callee sees rsp+8 aligned */
    r->rbp = 0;                         /* frame-pointer walks stop here */
    r->orig_rax = (unsigned long)-1;
    r->eflags &= ~(EFLAGS_TF | EFLAGS_DF);
}
/* ---- end ARCH ---------------------------------------------------------------------------- */

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int fail(mt_remote *t, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->error, sizeof t->error, fmt, ap);
    va_end(ap);
    return code;
}

static int sys_fail(mt_remote *t, const char *what) {
    t->err = errno;
    if (errno == ESRCH)
        return fail(t, MT_REMOTE_EGONE, "%s: thread %d is gone", what, (int)t->tid);
    return fail(t, MT_REMOTE_ESYS, "%s: %s", what, strerror(errno));
}

static void add_pending(mt_remote *t, int sig) {
    for (int i = 0; i < t->npending; i++)
        if (t->pending[i] == sig)
            return; /* standard signals do not queue: one pending instance is all there was */
    if (t->npending < MT_REMOTE_MAX_PENDING)
        t->pending[t->npending++] = sig;
}

/* The next stop of the thread; MT_REMOTE_OK with *status, or a code. */
static int wait_stop(mt_remote *t, int *status, long deadline) {
    useconds_t nap = 20;
    for (;;) {
        pid_t r = waitpid(t->tid, status, __WALL | WNOHANG);
        if (r == t->tid) {
            if (WIFEXITED(*status) || WIFSIGNALED(*status)) {
                t->seized = 0; /* nothing left to detach from */
                return fail(t, MT_REMOTE_EGONE, "thread %d exited", (int)t->tid);
            }
            if (WIFSTOPPED(*status))
                return MT_REMOTE_OK;
            continue;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ECHILD) {
                t->seized = 0;
                return fail(t, MT_REMOTE_EGONE, "thread %d exited", (int)t->tid);
            }
            return sys_fail(t, "waitpid");
        }
        if (now_ms() >= deadline)
            return fail(t, MT_REMOTE_ETIMEOUT, "thread %d did not stop in time", (int)t->tid);
        usleep(nap);
        if (nap < 1000)
            nap *= 2;
    }
}

static int is_group_stop(int status) {
    return (status >> 16) == PTRACE_EVENT_STOP && WSTOPSIG(status) != SIGTRAP;
}

/* Stop a running tracee again (after a timed-out call) so it can be restored. */
static int interrupt_and_wait(mt_remote *t, long deadline) {
    if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) != 0)
        return sys_fail(t, "PTRACE_INTERRUPT");
    for (;;) {
        int status;
        int rc = wait_stop(t, &status, deadline);
        if (rc != MT_REMOTE_OK)
            return rc;
        if ((status >> 16) == PTRACE_EVENT_STOP) {
            t->stopped = 1;
            return MT_REMOTE_OK;
        }
        add_pending(t, WSTOPSIG(status));
        if (ptrace(PTRACE_CONT, t->tid, 0, 0) != 0)
            return sys_fail(t, "PTRACE_CONT");
    }
}

int mt_remote_seize(mt_remote *t, pid_t pid, pid_t tid, int timeout_ms) {
    memset(t, 0, sizeof *t);
    t->mem_fd = -1;
    t->pid = pid;
    t->tid = tid;
    long deadline = now_ms() + timeout_ms;
    if (ptrace(PTRACE_SEIZE, tid, 0, 0) != 0)
        return sys_fail(t, "PTRACE_SEIZE");
    t->seized = 1;
    if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0)
        return sys_fail(t, "PTRACE_INTERRUPT");
    for (;;) {
        int status;
        int rc = wait_stop(t, &status, deadline);
        if (rc != MT_REMOTE_OK) /* timeout: still running (uninterruptible sleep?) */
            return rc;
        if ((status >> 16) == PTRACE_EVENT_STOP) {
            t->stopped = 1;
            if (is_group_stop(status))
                return fail(t, MT_REMOTE_ESTOPPED, "process %d is stopped (job control)",
                            (int)pid);
            break; /* our interrupt */
        }
        /* A signal arrived first: keep it for later, resume without it. */
        add_pending(t, WSTOPSIG(status));
        if (ptrace(PTRACE_CONT, tid, 0, 0) != 0)
            return sys_fail(t, "PTRACE_CONT");
    }
    mt_regs *regs = (mt_regs *)t->regs;
    if (ptrace(PTRACE_GETREGS, tid, 0, regs) != 0)
        return sys_fail(t, "PTRACE_GETREGS");
    t->in_syscall = REG_SYSNR(regs) >= 0;
    t->syscall_nr = REG_SYSNR(regs);
    t->xstate = calloc(1, XSTATE_MAX);
    if (t->xstate == NULL)
        return fail(t, MT_REMOTE_ESYS, "out of memory");
    struct iovec iov = {t->xstate, XSTATE_MAX};
    if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_X86_XSTATE, &iov) == 0) {
        t->xstate_len = iov.iov_len; /* the kernel's own size: what it accepts back */
    } else {
        if (ptrace(PTRACE_GETFPREGS, tid, 0, t->xstate) != 0)
            return sys_fail(t, "PTRACE_GETFPREGS");
        t->xstate_len = sizeof(struct user_fpregs_struct);
        t->xstate_is_fpregs = 1;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    t->mem_fd = open(path, O_RDWR | O_CLOEXEC);
    if (t->mem_fd < 0)
        return sys_fail(t, "open /proc/PID/mem");
    return MT_REMOTE_OK;
}

uint64_t mt_remote_ip(const mt_remote *t) { return REG_IP((const mt_regs *)t->regs); }
uint64_t mt_remote_sp(const mt_remote *t) { return REG_SP((const mt_regs *)t->regs); }

int mt_remote_backtrace(mt_remote *t, uint64_t *ips, int max) {
    if (max <= 0)
        return 0;
    int n = 0;
    unw_addr_space_t as = unw_create_addr_space(&_UPT_accessors, 0);
    void *upt = as ? _UPT_create(t->tid) : NULL;
    if (as && upt) {
        unw_cursor_t cursor;
        if (unw_init_remote(&cursor, as, upt) == 0) {
            do {
                unw_word_t ip = 0;
                if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0)
                    break;
                ips[n++] = ip;
            } while (n < max && unw_step(&cursor) > 0);
        }
    }
    if (upt)
        _UPT_destroy(upt);
    if (as)
        unw_destroy_addr_space(as);
    if (n == 0)
        ips[n++] = mt_remote_ip(t);
    return n;
}

int mt_remote_read(mt_remote *t, uint64_t addr, void *buf, size_t len) {
    ssize_t got = pread(t->mem_fd, buf, len, (off_t)addr);
    if (got != (ssize_t)len) {
        if (got >= 0)
            errno = EIO;
        return sys_fail(t, "reading the target's memory");
    }
    return MT_REMOTE_OK;
}

int mt_remote_write(mt_remote *t, uint64_t addr, const void *buf, size_t len) {
    ssize_t put = pwrite(t->mem_fd, buf, len, (off_t)addr);
    if (put != (ssize_t)len) {
        if (put >= 0)
            errno = EIO;
        return sys_fail(t, "writing the target's memory");
    }
    return MT_REMOTE_OK;
}

/* A fault in code we made the thread run: kernel-generated (si_code > 0), not a kill(). */
static int is_fault(mt_remote *t, int sig) {
    if (sig != SIGSEGV && sig != SIGBUS && sig != SIGILL && sig != SIGFPE)
        return 0;
    siginfo_t info;
    if (ptrace(PTRACE_GETSIGINFO, t->tid, 0, &info) != 0)
        return 1;
    return info.si_code > 0;
}

/* Resume the thread (PTRACE_SINGLESTEP or PTRACE_CONT) until it traps with its ip at
 * done_ip; *result is then rax. Signals that arrive meanwhile are kept for later; a fault in
 * what we made it run is reported, never delivered. */
static int run_until(mt_remote *t, int request, uint64_t done_ip, long deadline,
                     const char *what, long *result) {
    for (;;) {
        if (ptrace(request, t->tid, 0, 0) != 0)
            return sys_fail(t, request == PTRACE_CONT ? "PTRACE_CONT" : "PTRACE_SINGLESTEP");
        t->stopped = 0;
        int status;
        int rc = wait_stop(t, &status, deadline);
        t->stopped = rc == MT_REMOTE_OK;
        if (rc == MT_REMOTE_ETIMEOUT) {
            int irc = interrupt_and_wait(t, now_ms() + 2000);
            return irc == MT_REMOTE_OK ? fail(t, rc, "%s did not return in time", what) : irc;
        }
        if (rc != MT_REMOTE_OK)
            return rc;
        if (is_group_stop(status))
            return fail(t, MT_REMOTE_ESTOPPED, "process %d was stopped (job control)",
                        (int)t->pid);
        if ((status >> 16) != 0)
            continue; /* a stray ptrace event stop */
        int sig = WSTOPSIG(status);
        if (sig == SIGTRAP) {
            mt_regs r;
            if (ptrace(PTRACE_GETREGS, t->tid, 0, &r) != 0)
                return sys_fail(t, "PTRACE_GETREGS");
            if (REG_IP(&r) == done_ip) {
                *result = (long)REG_RET(&r);
                return MT_REMOTE_OK;
            }
        }
        if (is_fault(t, sig))
            return fail(t, MT_REMOTE_ECRASH, "%s faulted (signal %d)", what, sig);
        add_pending(t, sig); /* delivered once, after we let go (someone else's SIGTRAP too) */
    }
}

int mt_remote_syscall(mt_remote *t, uint64_t insn, long nr, const long args[6], long *result,
                      int timeout_ms) {
    long deadline = now_ms() + timeout_ms;
    mt_regs r = *(mt_regs *)t->regs;
    set_syscall_regs(&r, insn, nr, args);
    if (ptrace(PTRACE_SETREGS, t->tid, 0, &r) != 0)
        return sys_fail(t, "PTRACE_SETREGS");
    return run_until(t, PTRACE_SINGLESTEP, insn + 2, deadline, "the system call", result);
}

int mt_remote_call(mt_remote *t, uint64_t trampoline, uint64_t fn, const long args[6],
                   uint64_t stack_top, long *result, int timeout_ms) {
    long deadline = now_ms() + timeout_ms;
    mt_regs r = *(mt_regs *)t->regs;
    set_call_regs(&r, trampoline, fn, args, stack_top);
    if (ptrace(PTRACE_SETREGS, t->tid, 0, &r) != 0)
        return sys_fail(t, "PTRACE_SETREGS");
    /* done just after the int3 */
    return run_until(t, PTRACE_CONT, trampoline + sizeof TRAMPOLINE, deadline, "the call",
                     result);
}

static int is_stop_signal(int sig) {
    return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

int mt_remote_release(mt_remote *t) {
    int rc = MT_REMOTE_OK;
    if (t->seized && !t->stopped) {
        /* Not stopped yet (it did not answer the interrupt in time): a tracee can only be
         * detached in a stop, so give it a last while; if it never stops, the kernel
         * detaches it when this process exits. */
        if (interrupt_and_wait(t, now_ms() + 3000) != MT_REMOTE_OK)
            goto out;
    }
    if (t->seized) {
        /* ESRCH from here on: the thread was killed meanwhile; nothing is left to restore. */
        if (t->xstate != NULL && t->xstate_len > 0) {
            /* The extended state first: the kernel takes it only at its own length. */
            int r;
            if (t->xstate_is_fpregs) {
                r = ptrace(PTRACE_SETFPREGS, t->tid, 0, t->xstate);
            } else {
                struct iovec iov = {t->xstate, t->xstate_len};
                r = ptrace(PTRACE_SETREGSET, t->tid, (void *)NT_X86_XSTATE, &iov);
            }
            if (r != 0) {
                if (errno == ESRCH)
                    goto gone;
                rc = sys_fail(t, "restoring the extended register state");
            }
        }
        if (t->xstate != NULL) { /* registers were saved */
            /* rax and orig_rax as they were: an interrupted system call restarts. */
            if (ptrace(PTRACE_SETREGS, t->tid, 0, t->regs) != 0) {
                if (errno == ESRCH)
                    goto gone;
                if (rc == MT_REMOTE_OK)
                    rc = sys_fail(t, "PTRACE_SETREGS");
            }
        }
        for (int i = 0; i < t->npending; i++) {
            int sig = t->pending[i];
            if (is_stop_signal(sig))
                kill(t->pid, sig);
            else
                syscall(SYS_tgkill, t->pid, t->tid, sig);
        }
        t->npending = 0;
        if (ptrace(PTRACE_DETACH, t->tid, 0, 0) != 0 && errno != ESRCH && rc == MT_REMOTE_OK)
            rc = sys_fail(t, "PTRACE_DETACH");
    gone:
        t->seized = 0;
    }
out:
    if (t->mem_fd >= 0) {
        close(t->mem_fd);
        t->mem_fd = -1;
    }
    free(t->xstate);
    t->xstate = NULL;
    return rc;
}

long mt_remote_xsave_size(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(0xD, 0, &a, &b, &c, &d))
        return 0;
    return (long)b;
}

const unsigned char *mt_remote_trampoline(size_t *len) {
    *len = sizeof TRAMPOLINE;
    return TRAMPOLINE;
}

#else /* not x86_64: one clear error everywhere */

static int unsupported(mt_remote *t) {
    snprintf(t->error, sizeof t->error, "attach supports x86_64 only");
    return MT_REMOTE_EARCH;
}
int mt_remote_seize(mt_remote *t, pid_t pid, pid_t tid, int timeout_ms) {
    (void)pid; (void)tid; (void)timeout_ms;
    memset(t, 0, sizeof *t);
    t->mem_fd = -1;
    return unsupported(t);
}
uint64_t mt_remote_ip(const mt_remote *t) { (void)t; return 0; }
uint64_t mt_remote_sp(const mt_remote *t) { (void)t; return 0; }
int mt_remote_backtrace(mt_remote *t, uint64_t *ips, int max) {
    (void)ips; (void)max; return unsupported(t);
}
int mt_remote_read(mt_remote *t, uint64_t a, void *b, size_t l) {
    (void)a; (void)b; (void)l; return unsupported(t);
}
int mt_remote_write(mt_remote *t, uint64_t a, const void *b, size_t l) {
    (void)a; (void)b; (void)l; return unsupported(t);
}
int mt_remote_syscall(mt_remote *t, uint64_t i, long n, const long a[6], long *r, int ms) {
    (void)i; (void)n; (void)a; (void)r; (void)ms; return unsupported(t);
}
int mt_remote_call(mt_remote *t, uint64_t tr, uint64_t f, const long a[6], uint64_t s, long *r,
                   int ms) {
    (void)tr; (void)f; (void)a; (void)s; (void)r; (void)ms; return unsupported(t);
}
int mt_remote_release(mt_remote *t) { (void)t; return MT_REMOTE_OK; }
long mt_remote_xsave_size(void) { return 0; }
const unsigned char *mt_remote_trampoline(size_t *len) { *len = 0; return NULL; }
#endif
