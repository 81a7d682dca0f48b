/* libunwind's system calls while memtrace unwinds (unwinder.c).
 *
 * libunwind (as Debian builds it) blocks every signal around each of its locked sections
 * (two sigprocmask system calls each time), and checks each stack address it reads with
 * three more (mincore, then a read and a write on a pipe). A step of a step-by-step
 * unwinding goes through several of both: pandas' import under --native made 486,000
 * sigprocmask and 87,000 checking calls, the most of them in its 7,500 unwindings made step
 * by step (inside dlopen, a thread's first ones, the fills of the kept unwinding) and in
 * the 8% of its 104,000 fast backtraces that libunwind's cache could not answer.
 *
 * So around those unwindings memtrace blocks every signal itself, once, and libunwind's
 * imports of sigprocmask, mincore, read and syscall (patched in libunwind alone, hooks.c)
 * answer without a system call meanwhile: its sigprocmask calls only update the mask the
 * thread would have had (the same signals stay out of the same sections, for the whole
 * unwinding instead of each of its pieces), and an address check for a range between the
 * thread's stack pointer and the top of its stack (every one of pandas') is answered
 * "readable", which it is. Anything else goes to the system as before. */
#ifndef MEMTRACE_UNWINDER_H
#define MEMTRACE_UNWINDER_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#define MT_UNWINDER_HIDDEN __attribute__((visibility("hidden")))

/* The real functions (resolved by hooks.c, as every hooked function is). */
extern int (*mt_real_sigprocmask)(int, const sigset_t *, sigset_t *) MT_UNWINDER_HIDDEN;
extern int (*mt_real_mincore)(void *, size_t, unsigned char *) MT_UNWINDER_HIDDEN;
extern ssize_t (*mt_real_read)(int, void *, size_t) MT_UNWINDER_HIDDEN;
extern long (*mt_real_syscall)(long, ...) MT_UNWINDER_HIDDEN;

/* The hooks patched into libunwind's own slots. */
int mt_unwinder_sigprocmask(int how, const sigset_t *set, sigset_t *old) MT_UNWINDER_HIDDEN;
int mt_unwinder_mincore(void *addr, size_t len, unsigned char *vec) MT_UNWINDER_HIDDEN;
ssize_t mt_unwinder_read(int fd, void *buf, size_t n) MT_UNWINDER_HIDDEN;
long mt_unwinder_syscall(long number, long a, long b, long c, long d, long e,
                         long f) MT_UNWINDER_HIDDEN;

/* Set by hooks.c while libunwind's sigprocmask slot holds its hook. */
extern int mt_unwinder_patched MT_UNWINDER_HIDDEN;

/* Around an unwinding: every signal blocked once, libunwind's calls answered meanwhile.
 * begin returns what end takes (0: nothing was done, as when the hooks are not in place). */
int mt_unwind_mask_begin(void) MT_UNWINDER_HIDDEN;
void mt_unwind_mask_end(int began) MT_UNWINDER_HIDDEN;
/* libunwind's sigprocmask calls this thread made so far, answered or not: whether an
 * unwinding went into its locked sections. */
extern __thread long mt_unwind_mask_calls
    __attribute__((tls_model("initial-exec"))) MT_UNWINDER_HIDDEN;
/* For tests: unwindings masked, sigprocmask calls answered, address checks answered. */
void mt_unwind_mask_counts(long *blocks, long *answered, long *checked);

#endif
