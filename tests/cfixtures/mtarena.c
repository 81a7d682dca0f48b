/* An allocator inside an "installed extension", as polars' jemalloc is: the extension's own
 * code calls it directly (not through malloc), and it maps its pools with mmap at the end
 * of a chain of its own functions, named with its prefix, and static helpers without one.
 * Built by tests/symbols/test_allocator_frames.py into a site-packages directory. */
#include <stddef.h>
#include <sys/mman.h>

#define BARRIER() __asm__ volatile("" ::: "memory") /* no tail call: each frame stays */

__attribute__((noinline)) void *_rjem_je_pages_map(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    BARRIER();
    return p == MAP_FAILED ? NULL : p;
}

/* jemalloc's static helpers between its named functions (pac_alloc_impl, pac_alloc_real) */
__attribute__((noinline)) static void *pool_grow_real(size_t n) {
    void *p = _rjem_je_pages_map(n);
    BARRIER();
    return p;
}

__attribute__((noinline)) static void *pool_grow(size_t n) {
    void *p = pool_grow_real(n);
    BARRIER();
    return p;
}

__attribute__((noinline)) void *_rjem_malloc(size_t n) {
    void *p = pool_grow(n);
    BARRIER();
    return p;
}

/* the extension's code: where the memory is for */
__attribute__((noinline)) void *column_with_capacity(size_t n) {
    void *p = _rjem_malloc(n);
    BARRIER();
    return p;
}
