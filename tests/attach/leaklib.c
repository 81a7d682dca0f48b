/* Ground truth for the attach tests: a named C function that leaks through an inlined
 * helper. Built by tests/attach/conftest.py with gcc -g -O1 -fPIC -shared.
 *
 * attach_leak_c(n) -> attach_leak_helper (always inlined) -> malloc(n); the block is kept
 * and its address returned, so the target can print it for the test to compare.
 * attach_churn() mallocs and frees without end (called from a thread, GIL released): a
 * stream far faster than a FIFO's buffer. */
#include <stdlib.h>

static void *volatile kept[1 << 16];
static volatile unsigned n_kept;

static inline __attribute__((always_inline)) void *attach_leak_helper(size_t n) {
    void *p = malloc(n);
    kept[n_kept++ & 0xFFFF] = p;
    return p;
}

__attribute__((noinline)) void *attach_leak_c(size_t n) {
    return attach_leak_helper(n);
}

__attribute__((noinline)) void attach_churn(void) {
    for (;;) {
        void *p = malloc(64);
        kept[0xFFFF] = p;
        free(p);
    }
}
