/* Preloaded (LD_PRELOAD) by the transparency test: counts the anonymous 16 KiB mappings a
 * process makes, which in CPython 3.11+ are its frame-stack chunks (pymalloc's arenas are
 * 256 KiB or 1 MiB); mt_chunk_maps() reads the count, through ctypes.CDLL(None). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/types.h>

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);

static long g_chunk_maps;

long mt_chunk_maps(void) { return __atomic_load_n(&g_chunk_maps, __ATOMIC_RELAXED); }

static void count(size_t len, int flags) {
    if (len == 16384 && (flags & MAP_ANONYMOUS))
        __atomic_add_fetch(&g_chunk_maps, 1, __ATOMIC_RELAXED);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    static mmap_fn real;
    if (real == NULL) real = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
    count(len, flags);
    return real(addr, len, prot, flags, fd, off);
}

/* what a libpython built with 64-bit file offsets calls */
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    static mmap_fn real;
    if (real == NULL) real = (mmap_fn)dlsym(RTLD_NEXT, "mmap64");
    count(len, flags);
    return real(addr, len, prot, flags, fd, off);
}
