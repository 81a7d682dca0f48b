/* Ground-truth plain shared library for the tracer tests, loaded with ctypes.CDLL after
 * tracing began (the dlopen test) and itself dlopen-ing a second library (mtdl2.c).
 *
 * mt_lib_alloc: mt_lib_outer -> mt_lib_inner -> malloc, 4 blocks of 6000029 + 1031*i bytes,
 * blocks 1 and 3 kept until exit. Built by tests/conftest.py with gcc -g -O1 -fPIC -shared.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

static void *volatile kept[64];
static volatile int n_kept;
static void *volatile sink;

NOINLINE void *mt_lib_inner(size_t n) {
    void *p = malloc(n);
    sink = p;
    return p;
}

NOINLINE void mt_lib_outer(void) {
    for (int i = 0; i < 4; i++) {
        void *p = mt_lib_inner(6000029 + 1031 * (size_t)i);
        if (i % 2 == 1) {
            kept[n_kept++] = p;
        } else {
            free(p);
        }
    }
    sink = NULL;
}

void mt_lib_alloc(void) {
    mt_lib_outer();
    sink = NULL;
}

/* dlopen `path` from C, call its `symbol` (a void(void) function); 0 on success. */
int mt_dlopen_call(const char *path, const char *symbol) {
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        return 1;
    }
    void (*fn)(void) = (void (*)(void))dlsym(handle, symbol);
    if (fn == NULL) {
        return 2;
    }
    fn();
    return 0;
}
