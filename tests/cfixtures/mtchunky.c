/* An allocator of its own, for LD_PRELOAD: malloc, calloc, realloc and free wrap glibc's
 * and, as allocators that map their own chunks do (jemalloc, tcmalloc), now and then map
 * and unmap a chunk with mmap/munmap *through the PLT*, so the tracer's hooks see those
 * calls made inside the allocator. Exact or sampled, they must never be recorded on their
 * own: the program allocated a block, not a chunk (tests/tracer/test_tracer_sampling.py).
 *
 * Built by the tests with: gcc -g -O1 -fPIC -shared.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/mman.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

#define CHUNK (16u << 20) /* mapped, never touched: costs no memory */
#define EVERY 1024        /* calls between chunks */

static unsigned long calls;

static void chunk(void) {
    if (__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED) % EVERY != 0) return;
    void *p = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) munmap(p, CHUNK);
}

void *malloc(size_t n) {
    chunk();
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size) {
    chunk();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n) {
    chunk();
    return __libc_realloc(p, n);
}

void free(void *p) {
    if (p) chunk();
    __libc_free(p);
}
