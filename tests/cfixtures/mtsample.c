/* Ground truth for the sampling tests (`--sample BYTES`), loaded with ctypes.
 *
 * Each function allocates exactly `count` blocks of `block` bytes with malloc: churn frees
 * each at once, leak keeps them until exit, threads runs churn on n pthreads at the same
 * time. The test scripts know every figure exactly, so estimates are checked against both
 * the truth and exact mode.
 *
 * Built by the tests with: gcc -g -O1 -fPIC -shared -pthread.
 */
#include <pthread.h>
#include <stdlib.h>

#define MAX_KEPT (1 << 20)

static void *volatile sink;
static void *volatile kept[MAX_KEPT]; /* static: keeping pointers allocates nothing */
static volatile long n_kept;

__attribute__((noinline)) void mts_churn(size_t block, long count) {
    for (long i = 0; i < count; i++) {
        void *p = malloc(block);
        sink = p;
        free(p);
    }
}

__attribute__((noinline)) void mts_leak(size_t block, long count) {
    for (long i = 0; i < count && n_kept < MAX_KEPT; i++) kept[n_kept++] = malloc(block);
}

/* Touches no allocator at all. */
__attribute__((noinline)) long mts_nothing(long n) {
    long s = 0;
    for (long i = 0; i < n; i++) s += i ^ (s >> 3);
    return s;
}

typedef struct {
    size_t block;
    long count;
} churn_job;

static void *churn_thread(void *arg) {
    churn_job *job = arg;
    mts_churn(job->block, job->count);
    return NULL;
}

/* n pthreads churning at once (thread stacks come from mmap, not malloc). */
int mts_threads(int n, size_t block, long count) {
    pthread_t t[64];
    churn_job job = {block, count};
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, churn_thread, &job) != 0) return -1;
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    return 0;
}
