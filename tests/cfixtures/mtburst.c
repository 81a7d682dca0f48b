/* A burst of distinct native stacks, then a steady leak through one named function.
 *
 * burst_all(depth): 2^depth calls down a binary tree of two mutually recursive functions,
 * each level calling one of them from a different call site, so every call path is a
 * distinct native stack; each one mallocs 48 bytes at the bottom and frees them (the
 * burst leaves nothing in use). mt_leak_step(n): one block of n bytes, kept until exit.
 *
 * Built by the tests with gcc -g -O1 -fno-optimize-sibling-calls -fPIC -shared.
 */
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

static void *volatile sink;
static void *volatile kept[100000];
static volatile int n_kept;

NOINLINE void *burst_leaf(size_t n) {
    void *p = malloc(n);
    sink = p;
    return p;
}

NOINLINE void burst_b(int depth, unsigned code);

NOINLINE void burst_a(int depth, unsigned code) {
    if (depth == 0) {
        free(burst_leaf(48));
    } else if (code & 1) {
        burst_a(depth - 1, code >> 1);
    } else {
        burst_b(depth - 1, code >> 1);
    }
    sink = NULL;
}

NOINLINE void burst_b(int depth, unsigned code) {
    if (depth == 0) {
        free(burst_leaf(48));
    } else if (code & 1) {
        burst_a(depth - 1, code >> 1);
    } else {
        burst_b(depth - 1, code >> 1);
    }
    sink = NULL;
}

/* Every path of the tree once: 2^depth distinct native stacks. */
void burst_all(int depth) {
    for (unsigned code = 0; code < (1u << depth); code++) {
        burst_a(depth, code);
    }
}

NOINLINE void mt_leak_step(size_t n) {
    void *p = malloc(n);
    sink = p;
    if (n_kept < 100000) {
        kept[n_kept++] = p;
    }
}
