/* A library whose constructor allocates many times inside dlopen, at two depths, and loads
 * another library from there (libmtctor.so, named by MT_CTOR), then allocates again. The
 * unwinder keeps the frames outward of a loader call for the call's next allocations
 * (recorder.c, unwind_in_loader): every block's stack must still go on through each dlopen
 * to the Python caller. Blocks: 70001 + i for i in 0..39 (odd i through ctor_mid), 70100
 * after the nested load; the nested library's own is 65537. They are strdup()s: libc's
 * malloc call goes through a relocation memtrace patched before the load, as mtctor.c's
 * does (this library's own relocations are patched once dlopen returns). */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#define BARRIER() __asm__ volatile("" ::: "memory") /* no tail call: each frame stays */

static void *volatile kept[48];
static char text[70101];

__attribute__((noinline)) static void *ctor_leaf(size_t n) {
    memset(text, 'c', n - 1);
    text[n - 1] = 0;
    void *p = strdup(text); /* n bytes */
    BARRIER();
    return p;
}

__attribute__((noinline)) static void *ctor_mid(size_t n) {
    void *p = ctor_leaf(n);
    BARRIER();
    return p;
}

__attribute__((noinline)) static void ctor_many(void) {
    for (int i = 0; i < 40; i++) kept[i] = i % 2 ? ctor_mid(70001 + i) : ctor_leaf(70001 + i);
    BARRIER();
}

__attribute__((noinline)) static void ctor_nested(void) {
    const char *path = getenv("MT_CTOR");
    if (path) kept[40] = dlopen(path, RTLD_NOW);
    kept[41] = ctor_leaf(70100);
    BARRIER();
}

__attribute__((constructor)) static void mt_ctor_many(void) {
    ctor_many();
    ctor_nested();
    BARRIER();
}
