/* Address space reserved rather than allocated, as allocators' arenas and runtimes' heaps
 * are: MAP_NORESERVE and PROT_NONE mappings, part of one committed by a MAP_FIXED mapping
 * over it, a plain mapping beside them. Called through ctypes by the reservation tests. */
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

static void *map(void *at, size_t n, int prot, int flags) {
    void *p = mmap(at, n, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *mtr_noreserve(size_t n) { return map(NULL, n, PROT_READ | PROT_WRITE, MAP_NORESERVE); }

void *mtr_none(size_t n) { return map(NULL, n, PROT_NONE, 0); }

/* Commit n bytes at `at` (inside a PROT_NONE reservation) and touch them. */
void *mtr_commit(void *at, size_t n) {
    void *p = map(at, n, PROT_READ | PROT_WRITE, MAP_FIXED);
    if (p != NULL) memset(p, 1, n);
    return p;
}

void *mtr_plain(size_t n) { return map(NULL, n, PROT_READ | PROT_WRITE, 0); }

int mtr_release(void *p, size_t n) { return munmap(p, n); }
