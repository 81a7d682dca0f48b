/* Ground-truth library for dlopen through the caller's search path (issue 19).
 *
 * Built twice by tests/conftest.py, with -Wl,-rpath,$ORIGIN/sharedlibs as DT_RUNPATH and as
 * DT_RPATH. mt_rpath_load() dlopens the bare soname "libmtrpathdep.so", which only that
 * search path finds (tests/cfixtures/mtrpathdep.c, in sharedlibs/ next to this library),
 * and calls its mt_rpath_dep_alloc: 0 on success, 1 when dlopen failed, 2 when dlsym did.
 * mt_rpath_mload() does the same with dlmopen(LM_ID_BASE, ...).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

static int call_dep(void *handle) {
    if (handle == NULL) {
        fprintf(stderr, "mt_rpath_load: %s\n", dlerror());
        return 1;
    }
    void (*alloc)(void) = (void (*)(void))dlsym(handle, "mt_rpath_dep_alloc");
    if (alloc == NULL) {
        return 2;
    }
    alloc();
    return 0;
}

int mt_rpath_load(void) {
    return call_dep(dlopen("libmtrpathdep.so", RTLD_NOW | RTLD_LOCAL));
}

int mt_rpath_mload(void) {
    return call_dep(dlmopen(LM_ID_BASE, "libmtrpathdep.so", RTLD_NOW | RTLD_LOCAL));
}
