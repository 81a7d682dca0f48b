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
#include <stdint.h>
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

/* `count` blocks of n x size bytes from calloc, each freed at once. */
__attribute__((noinline)) void mts_calloc_churn(size_t n, size_t size, long count) {
    for (long i = 0; i < count; i++) {
        void *p = calloc(n, size);
        sink = p;
        free(p);
    }
}

/* `count` blocks of `block` bytes from malloc, each grown to 2 * block by realloc (moved: a
 * block allocated after it keeps it from growing in place, so realloc frees the old block
 * and the next malloc may get its address); the last `keep` of them are kept until exit,
 * the others freed at once. */
__attribute__((noinline)) void mts_realloc_churn(size_t block, long count, long keep) {
    for (long i = 0; i < count; i++) {
        void *p = malloc(block);
        void *wall = malloc(16);
        p = realloc(p, 2 * block);
        free(wall);
        sink = p;
        if (i >= count - keep && n_kept < MAX_KEPT) {
            kept[n_kept++] = p;
        } else {
            free(p);
        }
    }
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

/* Blocks passed around: `threads` threads each take a slot under its lock, free its block and
 * malloc a new one of `size` bytes, `rounds` times, slot after slot. With one malloc arena
 * and no per-thread cache (the test's environment), a freed address is handed straight to
 * the next thread's malloc: the FREE of an address and its next ALLOC come from different
 * threads, racing. At the end every slot holds one block: slots * size bytes in use. */
#define MAX_SLOTS 64

typedef struct {
    pthread_mutex_t lock;
    void *block;
} slot;

static slot slots[MAX_SLOTS];
static int n_slots;
static size_t pass_size;
static long pass_rounds;

static void *pass_thread(void *arg) {
    long first = (long)(intptr_t)arg;
    for (long r = 0; r < pass_rounds; r++) {
        slot *s = &slots[(first + r) % n_slots];
        pthread_mutex_lock(&s->lock);
        free(s->block);
        s->block = malloc(pass_size);
        sink = s->block;
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

int mts_pass_around(int threads, int nslots, size_t size, long rounds) {
    pthread_t t[64];
    if (threads > 64) threads = 64;
    if (nslots > MAX_SLOTS) nslots = MAX_SLOTS;
    n_slots = nslots;
    pass_size = size;
    pass_rounds = rounds;
    for (int i = 0; i < nslots; i++) {
        pthread_mutex_init(&slots[i].lock, NULL);
        slots[i].block = malloc(size);
    }
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, pass_thread, (void *)(intptr_t)i) != 0) return -1;
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    return 0;
}

/* `count` times: a block of `block` bytes freed where no hook sees it (glibc's __libc_free is
 * not a hooked name), then a block of the same size, which glibc hands out at the same
 * address, freed normally. Returns how many times the address came back: each is an
 * allocation of an address the tracer still holds (an implicit free of the first block). */
extern void __libc_free(void *);

long mts_unseen_free(size_t block, long count) {
    long same = 0;
    for (long i = 0; i < count; i++) {
        void *p = malloc(block);
        __libc_free(p);
        void *q = malloc(block);
        same += q == p;
        sink = q;
        free(q);
    }
    return same;
}
