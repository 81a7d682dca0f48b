/* libunwind's system calls while memtrace unwinds (see unwinder.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "unwinder.h"

#define LIKELY(x) __builtin_expect(!!(x), 1)

int (*mt_real_sigprocmask)(int, const sigset_t *, sigset_t *);
int (*mt_real_mincore)(void *, size_t, unsigned char *);
ssize_t (*mt_real_read)(int, void *, size_t);
long (*mt_real_syscall)(long, ...);
int mt_unwinder_patched;

__thread long mt_unwind_mask_calls __attribute__((tls_model("initial-exec")));
static __thread int t_masked __attribute__((tls_model("initial-exec")));
static __thread sigset_t t_vmask __attribute__((tls_model("initial-exec")));
/* The thread's stack, found once (pthread_getattr_np); lo 1 when it could not be. */
static __thread uintptr_t t_stack_lo __attribute__((tls_model("initial-exec")));
static __thread uintptr_t t_stack_hi __attribute__((tls_model("initial-exec")));
static size_t g_page = 4096; /* set once a stack is found */
/* Where libunwind is in an address check answered here: its mincore was (1), then its
 * read (2); its write through syscall ends it. */
static __thread int t_check __attribute__((tls_model("initial-exec")));
static long g_blocks, g_answered, g_checked; /* for tests */

static void count(long *counter) { __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); }

int mt_unwinder_sigprocmask(int how, const sigset_t *set, sigset_t *old) {
    mt_unwind_mask_calls++;
    if (LIKELY(!t_masked)) return mt_real_sigprocmask(how, set, old);
    count(&g_answered);
    sigset_t was = t_vmask;
    if (set != NULL) {
        if (how == SIG_SETMASK) {
            t_vmask = *set;
        } else if (how == SIG_BLOCK) {
            sigorset(&t_vmask, &t_vmask, set);
        } else if (how == SIG_UNBLOCK) {
            for (int sig = 1; sig < NSIG; sig++)
                if (sigismember(set, sig) == 1) sigdelset(&t_vmask, sig);
        } else {
            errno = EINVAL;
            return -1;
        }
    }
    if (old != NULL) *old = was;
    return 0;
}

/* libunwind checks an address it is about to read with mincore (does it map?), then by
 * writing a byte of it into a pipe it keeps (is it readable?), reading the pipe empty
 * first. Only a range of this thread's stack from the current stack pointer up is
 * answered here, and only while it is masked: those pages are mapped and readable. A
 * thread running on another stack (a coroutine's) is not answered. */
int mt_unwinder_mincore(void *addr, size_t len, unsigned char *vec) {
    char here;
    uintptr_t sp = (uintptr_t)&here & ~(uintptr_t)(g_page - 1), a = (uintptr_t)addr;
    t_check = 0;
    if (t_masked && sp >= t_stack_lo && sp < t_stack_hi && a >= sp && a <= t_stack_hi &&
        len <= t_stack_hi - a) {
        memset(vec, 1, (len + g_page - 1) / g_page);
        t_check = 1;
        count(&g_checked);
        return 0;
    }
    return mt_real_mincore(addr, len, vec);
}

ssize_t mt_unwinder_read(int fd, void *buf, size_t n) {
    if (t_check == 1 && t_masked) { /* the pipe stays as it is: nothing was written */
        t_check = 2;
        errno = EAGAIN;
        return -1;
    }
    t_check = 0;
    return mt_real_read(fd, buf, n);
}

long mt_unwinder_syscall(long number, long a, long b, long c, long d, long e, long f) {
    if (t_check == 2 && t_masked && number == SYS_write) {
        t_check = 0;
        return 1; /* the byte "written": the address was readable */
    }
    t_check = 0;
    return mt_real_syscall(number, a, b, c, d, e, f);
}

/* This thread's stack bounds, once: the main thread's take a read of /proc/self/maps. */
static void find_stack(void) {
    pthread_attr_t attr;
    void *lo = NULL;
    size_t size = 0;
    t_stack_lo = 1; /* tried */
    long page = sysconf(_SC_PAGESIZE);
    if (page > 0) g_page = (size_t)page;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
    if (pthread_attr_getstack(&attr, &lo, &size) == 0 && lo != NULL) {
        t_stack_lo = (uintptr_t)lo;
        t_stack_hi = (uintptr_t)lo + size;
    }
    pthread_attr_destroy(&attr);
}

int mt_unwind_mask_begin(void) {
    if (!__atomic_load_n(&mt_unwinder_patched, __ATOMIC_RELAXED) || t_masked) return 0;
    if (t_stack_lo == 0) find_stack();
    sigset_t all;
    sigfillset(&all);
    if (mt_real_sigprocmask(SIG_SETMASK, &all, &t_vmask) != 0) return 0;
    t_masked = 1;
    t_check = 0;
    count(&g_blocks);
    return 1;
}

/* Back to the mask libunwind's calls left (the one from before, as they come in pairs). A
 * hook uninstalled meanwhile sent libunwind's later calls to the system, which saved and
 * put back the full mask: this still ends it. */
void mt_unwind_mask_end(int began) {
    if (!began) return;
    t_masked = 0;
    t_check = 0;
    mt_real_sigprocmask(SIG_SETMASK, &t_vmask, NULL);
}

void mt_unwind_mask_counts(long *blocks, long *answered, long *checked) {
    *blocks = __atomic_load_n(&g_blocks, __ATOMIC_RELAXED);
    *answered = __atomic_load_n(&g_answered, __ATOMIC_RELAXED);
    *checked = __atomic_load_n(&g_checked, __ATOMIC_RELAXED);
}
