/* Ground-truth library that allocates while it is being loaded (issue 19): its constructor
 * strdup()s a 65536-character string, so libc mallocs 65537 bytes (kept) from inside dlopen,
 * through a relocation memtrace patched before the load. */
#include <stdlib.h>
#include <string.h>

static char text[65537];
static char *volatile kept;

__attribute__((noinline)) static void mt_ctor_alloc(void) {
    memset(text, 'm', sizeof text - 1);
    kept = strdup(text);
}

__attribute__((constructor)) static void mt_ctor(void) {
    mt_ctor_alloc();
}
