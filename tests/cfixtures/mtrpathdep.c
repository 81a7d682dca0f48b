/* Loaded by mtrpath.c through its $ORIGIN search path. mt_rpath_dep_alloc: one block of
 * 7300001 bytes, kept until exit. */
#include <stdlib.h>

static void *volatile kept[8];
static volatile int n_kept;

__attribute__((noinline)) void mt_rpath_dep_alloc(void) {
    kept[n_kept++ % 8] = malloc(7300001);
}
