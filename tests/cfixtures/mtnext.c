/* Ground-truth libraries for dlsym(RTLD_NEXT) on behalf of its caller (issue 10/19).
 *
 * Built twice by tests/conftest.py: libmtnextb.so with -DPROBE=2, and libmtnexta.so with
 * -DPROBE=1 linked against B (so B follows A in A's search scope). mt_probe() returns
 * PROBE. In A, mt_next_probe() returns what the next mt_probe after A returns (B's: 2),
 * found with dlsym(RTLD_NEXT, ...), which depends on who calls dlsym.
 */
#define _GNU_SOURCE
#include <dlfcn.h>

int mt_probe(void) { return PROBE; }

int mt_next_probe(void) {
    int (*next)(void) = (int (*)(void))dlsym(RTLD_NEXT, "mt_probe");
    return next ? next() : 0;
}
