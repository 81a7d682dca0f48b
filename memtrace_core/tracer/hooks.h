/* Allocation interception by GOT/PLT patching (not LD_PRELOAD: the same code must work when
 * injected into a running process). Every loaded ELF object except the dynamic loader, the
 * vdso and this module gets its relocation slots for the allocator functions pointed at our
 * hooks; dlopen re-patches, and uninstall points every slot back at the real function. */
#ifndef MEMTRACE_HOOKS_H
#define MEMTRACE_HOOKS_H

/* Resolve the real functions; 0 on success. */
int mt_hooks_init(void);
/* Patch every loaded object (idempotent: also used after dlopen). Returns slots patched. */
int mt_hooks_install(void);
/* Point every patched slot back at the real function. */
void mt_hooks_uninstall(void);
/* PyMem/PyObject domain hooks (--trace-python-allocators); call with the GIL held. */
void mt_pymem_install(void);
void mt_pymem_uninstall(void);
/* Stop from C at process exit (_exit hook / exit code known). */
extern void (*mt_on_exit)(int status);

#endif
