/* Threads that allocate in phases, for the tests of exact mode's per-thread rings.
 *
 * mtp_start(n) starts n threads that wait; each mtp_phase(count, size) has every thread
 * malloc `count` blocks of `size` bytes and keep them, and returns once all are done;
 * between phases the threads allocate nothing. mtp_end() lets them exit (the blocks stay).
 *
 * Built by the tests with: gcc -g -O1 -fPIC -shared -pthread.
 */
#include <pthread.h>
#include <stdlib.h>

#define MAX_THREADS 64
#define MAX_KEPT (1 << 20)

static pthread_t threads[MAX_THREADS];
static int n_threads;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER, done = PTHREAD_COND_INITIALIZER;
static long phase, finished;
static long phase_count;
static size_t phase_size;
static int ending;
static void *volatile kept[MAX_KEPT]; /* static: keeping pointers allocates nothing */
static long n_kept;

static void *worker(void *arg) {
    (void)arg;
    long seen = 0;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (phase == seen && !ending) pthread_cond_wait(&go, &lock);
        if (phase == seen) break; /* ending */
        seen = phase;
        long count = phase_count;
        size_t size = phase_size;
        pthread_mutex_unlock(&lock);
        void *mine[4096];
        long n = count < 4096 ? count : 4096;
        for (long i = 0; i < n; i++) mine[i] = malloc(size);
        pthread_mutex_lock(&lock);
        for (long i = 0; i < n && n_kept < MAX_KEPT; i++) kept[n_kept++] = mine[i];
        if (++finished == n_threads) pthread_cond_signal(&done);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int mtp_start(int n) {
    if (n > MAX_THREADS) n = MAX_THREADS;
    n_threads = n;
    for (int i = 0; i < n; i++)
        if (pthread_create(&threads[i], NULL, worker, NULL) != 0) return -1;
    return 0;
}

void mtp_phase(long count, size_t size) {
    pthread_mutex_lock(&lock);
    phase_count = count;
    phase_size = size;
    finished = 0;
    phase++;
    pthread_cond_broadcast(&go);
    while (finished < n_threads) pthread_cond_wait(&done, &lock);
    pthread_mutex_unlock(&lock);
}

void mtp_end(void) {
    pthread_mutex_lock(&lock);
    ending = 1;
    pthread_cond_broadcast(&go);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n_threads; i++) pthread_join(threads[i], NULL);
}
