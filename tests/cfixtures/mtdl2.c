/* Second ground-truth library, dlopen-ed from C by mtlib.c's mt_dlopen_call.
 * mt2_alloc: 2 blocks of 7000003 and 7001009 bytes, both kept until exit. */
#include <stdlib.h>

static void *volatile kept[8];

__attribute__((noinline)) void mt2_alloc(void) {
    kept[0] = malloc(7000003);
    kept[1] = malloc(7001009);
}
