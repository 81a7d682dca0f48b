/* Two kinds of allocation stream for the capture writer's choice between compressing and
 * storing (tests/capture/test_capture_stored.py).
 *
 * mts_random(n, seed): n mallocs of pseudo-random sizes (16 to 4111 bytes) into a pool of
 * 512 slots, each freeing the slot's previous block: sizes and address deltas look random,
 * and the stream shrinks only about 2x. mts_steady(n): n malloc(64)/free pairs, one
 * address and one size: every record repeats the one before, the stream shrinks hundreds
 * of times. Both return the bytes they allocated and leave nothing allocated.
 *
 * Built by the tests with gcc -g -O1 -fPIC -shared.
 */
#include <stdlib.h>

static void *volatile sink;

long mts_random(long n, unsigned seed) {
    void *slots[512] = {0};
    unsigned x = seed * 2654435761u + 1u;
    long bytes = 0;
    for (long i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        unsigned slot = (x >> 8) & 511u;
        size_t size = 16 + ((x >> 17) & 4095u);
        if (slots[slot]) free(slots[slot]);
        slots[slot] = malloc(size);
        bytes += (long)size;
    }
    for (int i = 0; i < 512; i++)
        if (slots[i]) free(slots[i]);
    return bytes;
}

long mts_steady(long n) {
    for (long i = 0; i < n; i++) {
        void *p = malloc(64);
        sink = p;
        free(p);
    }
    return 64 * n;
}
