/* Ground-truth library for process-level behaviour (issue 19), called with ctypes.
 *
 * mt_thread_names(out): three C threads named three ways, joined before it returns:
 *   a: allocates 2100001 bytes, names itself "mtname-a", allocates 2100002;
 *   b: never named, allocates 2100003 (under its kernel name, written to `out`, 16 bytes);
 *   c: allocates 2100004, is named "mtname-c" by its creator, allocates 2100005.
 * mt_allocate_in_atexit(): registers an atexit handler that allocates 2200001 bytes (it
 * runs inside exit()). Every block is kept until exit.
 * mt_exit_from_signal(): mallocs and frees without end until a SIGALRM handler calls
 * exit(0) 20 ms later (what many C programs do, though exit is not async-signal-safe): the
 * signal may land anywhere, inside the tracer included. Built by tests/conftest.py with
 * gcc -g -O1 -fPIC -shared -pthread.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static void *volatile kept[64];
static volatile int n_kept;
static pthread_barrier_t line;
static char unnamed_kernel_name[16];

static void keep(void *p) {
    kept[__atomic_fetch_add(&n_kept, 1, __ATOMIC_SEQ_CST) % 64] = p;
}

static void *thread_a(void *arg) {
    keep(malloc(2100001));
    pthread_setname_np(pthread_self(), "mtname-a");
    keep(malloc(2100002));
    return NULL;
}

static void *thread_b(void *arg) {
    pthread_getname_np(pthread_self(), unnamed_kernel_name, sizeof unnamed_kernel_name);
    keep(malloc(2100003));
    return NULL;
}

static void *thread_c(void *arg) {
    keep(malloc(2100004));
    pthread_barrier_wait(&line); /* allocated */
    pthread_barrier_wait(&line); /* renamed */
    keep(malloc(2100005));
    return NULL;
}

/* 0 on success; the unnamed thread's kernel name in out[16]. */
int mt_thread_names(char *out) {
    pthread_t a, b, c;
    int rc = 0;
    pthread_barrier_init(&line, NULL, 2);
    rc |= pthread_create(&a, NULL, thread_a, NULL);
    rc |= pthread_create(&b, NULL, thread_b, NULL);
    /* b is gone before c starts: glibc hands c b's thread descriptor, so c's pthread_t is
     * the one b had (a rename by pthread_t must find the live thread, not b). */
    pthread_join(b, NULL);
    rc |= pthread_create(&c, NULL, thread_c, NULL);
    if (rc == 0) {
        pthread_barrier_wait(&line);
        pthread_setname_np(c, "mtname-c");
        pthread_barrier_wait(&line);
    }
    pthread_join(a, NULL);
    pthread_join(c, NULL);
    pthread_barrier_destroy(&line);
    memcpy(out, unnamed_kernel_name, sizeof unnamed_kernel_name);
    return rc;
}

static void allocate_at_exit(void) {
    keep(malloc(2200001));
}

int mt_allocate_in_atexit(void) {
    return atexit(allocate_at_exit);
}

static void exit_now(int sig) {
    (void)sig;
    exit(0);
}

void mt_exit_from_signal(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = exit_now;
    sigaction(SIGALRM, &action, NULL);
    struct itimerval timer = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &timer, NULL);
    for (;;) {
        void *p = malloc(1000 + (size_t)(n_kept & 1023));
        kept[63] = p;
        free(p);
    }
}
