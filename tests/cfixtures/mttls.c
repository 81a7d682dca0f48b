/* Thread-local data too large for the static TLS surplus: after a dlopen, the dynamic loader
 * allocates this library's TLS block at each thread's first use (__tls_get_addr), through
 * its own pointers to malloc and free (tests/tracer/test_tracer_loader_allocations.py). */
#include <stdint.h>

#define MT_TLS_BYTES 300007

__thread char mt_tls_block[MT_TLS_BYTES] __attribute__((aligned(16)));

/* Writes one byte of this thread's block; returns the block's address. */
uintptr_t mt_tls_touch(int v) {
    volatile char *block = mt_tls_block;
    block[v] = (char)v;
    return (uintptr_t)block;
}
