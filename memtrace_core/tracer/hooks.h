/* Allocation interception by relocation patching (not LD_PRELOAD: the same code must work
 * when injected into a running process). Every loaded ELF object except the dynamic loader,
 * the vdso and this module gets its relocated slots bound to the allocator functions (PLT,
 * GOT and data pointers alike) pointed at our hooks; dlopen re-patches, dlsym hands out the
 * hooks, and uninstall points every slot that still holds a hook back at the real function.
 * The loader functions are called on behalf of their caller (callas.h); the process's exit
 * paths (exit, quick_exit, _exit, _Exit) write the trailer with the real exit status. */
#ifndef MEMTRACE_HOOKS_H
#define MEMTRACE_HOOKS_H

/* Resolve the real functions; 0 on success. */
int mt_hooks_init(void);
/* Set by mt_hooks_init: malloc, calloc and free are glibc's, which call no hooked function
 * inside (so sampling may skip the guard around the calls it does not record: hooks.c). */
extern int mt_hooks_glibc_allocator __attribute__((visibility("hidden")));
/* Patch every loaded object (idempotent: also used after dlopen). Returns slots patched. */
int mt_hooks_install(void);
/* After a dlopen: patch the objects loaded since the last install pass (all of them when
 * something was unloaded meanwhile). */
int mt_hooks_install_new(void);
/* Point every patched slot back at the real function. */
void mt_hooks_uninstall(void);
/* PyMem/PyObject domain hooks (--trace-python-allocators); call with the GIL held. */
void mt_pymem_install(void);
void mt_pymem_uninstall(void);

#endif
