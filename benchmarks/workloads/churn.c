/* malloc/free churn for the benchmarks: n allocations of mixed sizes (16..4111 bytes), each
 * written in full and freed 64 allocations later (out of order, as real programs do).
 * Built by benchmarks/bench_run.py with gcc -O2 -fPIC -shared; called through ctypes. */
#include <stdlib.h>
#include <string.h>

#define RING 64

long churn(long n, unsigned long seed) {
    void *ring[RING] = {0};
    unsigned long x = seed | 1;
    long checksum = 0;
    for (long i = 0; i < n; i++) {
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        size_t size = 16 + (x >> 33) % 4096;
        unsigned char *p = malloc(size);
        if (p == NULL) {
            return -1;
        }
        memset(p, (int)i, size);
        checksum += p[size / 2];
        int slot = (int)(i % RING);
        free(ring[slot]);
        ring[slot] = p;
    }
    for (int k = 0; k < RING; k++) {
        free(ring[k]);
    }
    return checksum;
}

/* n blocks of size..size+63 bytes kept live (the returned array holds them): live heap for
 * bench_tui's memory figure. Never freed: the program ends holding them. */
void **keep(long n, size_t size) {
    void **blocks = malloc((size_t)n * sizeof(void *));
    if (blocks == NULL) {
        return NULL;
    }
    for (long i = 0; i < n; i++) {
        blocks[i] = malloc(size + (size_t)(i % 64));
    }
    return blocks;
}
