/* GOT/PLT patching and the hook functions (see hooks.h). */
#define _GNU_SOURCE
#include <Python.h>

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <malloc.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hooks.h"
#include "recorder.h"

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void *(*reallocarray_fn)(void *, size_t, size_t);
typedef void (*free_fn)(void *);
typedef int (*posix_memalign_fn)(void **, size_t, size_t);
typedef void *(*aligned_alloc_fn)(size_t, size_t);
typedef void *(*valloc_fn)(size_t);
typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);
typedef void *(*dlopen_fn)(const char *, int);
typedef int (*dlclose_fn)(void *);
typedef void (*exit_fn)(int);

static malloc_fn real_malloc;
static calloc_fn real_calloc;
static realloc_fn real_realloc;
static reallocarray_fn real_reallocarray;
static free_fn real_free;
static posix_memalign_fn real_posix_memalign;
static aligned_alloc_fn real_aligned_alloc;
static aligned_alloc_fn real_memalign;
static valloc_fn real_valloc;
static valloc_fn real_pvalloc;
static mmap_fn real_mmap;
static mmap_fn real_mmap64;
static munmap_fn real_munmap;
static dlopen_fn real_dlopen;
static dlclose_fn real_dlclose;
static exit_fn real__exit;

void (*mt_on_exit)(int status) = NULL;

/* ---- hooks -------------------------------------------------------------------------- */

#define TRACE_OK (LIKELY(!mt_tracking) || mt_guard)

/* Who called the hook: its return address and the caller's stack pointer at the call (the
 * hook's CFA; hooks keep frame pointers). The recorder uses them to reuse the previous
 * native stack when the caller and every saved return address are unchanged. */
#define CALLER ((uintptr_t)__builtin_return_address(0)), \
               ((uintptr_t)__builtin_frame_address(0) + 2 * sizeof(void *))

/* While tracing, the real function runs with the guard set: an allocator implemented on
 * top of another (reallocarray on realloc, valloc on memalign...) through its own PLT must
 * count once, as what the program called. */
#define GUARDED(expr)        \
    do {                     \
        mt_guard = 1;        \
        expr;                \
        mt_guard = 0;        \
    } while (0)

static void *hook_malloc(size_t size) {
    if (TRACE_OK) return real_malloc(size);
    void *p;
    GUARDED(p = real_malloc(size));
    if (p) mt_record_alloc(p, size, MT_MALLOC, CALLER);
    return p;
}

static void *hook_calloc(size_t n, size_t size) {
    if (TRACE_OK) return real_calloc(n, size);
    void *p;
    GUARDED(p = real_calloc(n, size));
    if (p) mt_record_alloc(p, n * size, MT_CALLOC, CALLER);
    return p;
}

static void hook_free(void *p) {
    if (TRACE_OK || !p) {
        real_free(p);
        return;
    }
    mt_record_free(p, 0, MT_FREE);
    GUARDED(real_free(p));
}

/* realloc: the old block is recorded as freed *before* the call, so no other thread can be
 * handed that address and record it ahead of our free. A failed realloc (old block kept)
 * re-records the old block with its usable size: the one place a figure can be inexact, and
 * only when memory ran out. */
static void *realloc_common(void *old, size_t size, void *(*call)(void *, size_t, size_t),
                            size_t a, size_t b, int allocator, uintptr_t ra, uintptr_t cfa) {
    if (TRACE_OK) return call(old, a, b);
    if (old) mt_record_free(old, 0, allocator);
    void *p;
    GUARDED(p = call(old, a, b));
    if (p) {
        mt_record_alloc(p, size, allocator, ra, cfa);
    } else if (old && size != 0) {
        mt_record_alloc(old, malloc_usable_size(old), allocator, ra, cfa);
    }
    return p;
}

static void *call_realloc(void *p, size_t a, size_t b) { (void)b; return real_realloc(p, a); }
static void *call_reallocarray(void *p, size_t a, size_t b) { return real_reallocarray(p, a, b); }

static void *hook_realloc(void *old, size_t size) {
    return realloc_common(old, size, call_realloc, size, 0, MT_REALLOC, CALLER);
}

static void *hook_reallocarray(void *old, size_t n, size_t size) {
    return realloc_common(old, n * size, call_reallocarray, n, size, MT_REALLOCARRAY, CALLER);
}

static int hook_posix_memalign(void **out, size_t align, size_t size) {
    if (TRACE_OK) return real_posix_memalign(out, align, size);
    int rc;
    GUARDED(rc = real_posix_memalign(out, align, size));
    if (rc == 0 && *out) mt_record_alloc(*out, size, MT_POSIX_MEMALIGN, CALLER);
    return rc;
}

static void *hook_aligned_alloc(size_t align, size_t size) {
    if (TRACE_OK) return real_aligned_alloc(align, size);
    void *p;
    GUARDED(p = real_aligned_alloc(align, size));
    if (p) mt_record_alloc(p, size, MT_ALIGNED_ALLOC, CALLER);
    return p;
}

static void *hook_memalign(size_t align, size_t size) {
    if (TRACE_OK) return real_memalign(align, size);
    void *p;
    GUARDED(p = real_memalign(align, size));
    if (p) mt_record_alloc(p, size, MT_MEMALIGN, CALLER);
    return p;
}

static void *hook_valloc(size_t size) {
    if (TRACE_OK) return real_valloc(size);
    void *p;
    GUARDED(p = real_valloc(size));
    if (p) mt_record_alloc(p, size, MT_VALLOC, CALLER);
    return p;
}

static void *hook_pvalloc(size_t size) {
    if (TRACE_OK) return real_pvalloc(size);
    void *p;
    GUARDED(p = real_pvalloc(size));
    if (p) mt_record_alloc(p, size, MT_PVALLOC, CALLER);
    return p;
}

static void *mmap_common(mmap_fn real, void *addr, size_t len, int prot, int flags, int fd,
                         off_t off, uintptr_t ra, uintptr_t cfa) {
    if (TRACE_OK) return real(addr, len, prot, flags, fd, off);
    /* MAP_FIXED replaces whatever was mapped there: that range is unmapped first. */
    if ((flags & MAP_FIXED) && addr) mt_record_free(addr, len, MT_MUNMAP);
    void *p;
    GUARDED(p = real(addr, len, prot, flags, fd, off));
    if (p != MAP_FAILED) mt_record_alloc(p, len, MT_MMAP, ra, cfa);
    return p;
}

static void *hook_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return mmap_common(real_mmap, addr, len, prot, flags, fd, off, CALLER);
}

static void *hook_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return mmap_common(real_mmap64, addr, len, prot, flags, fd, off, CALLER);
}

static int hook_munmap(void *addr, size_t len) {
    if (TRACE_OK) return real_munmap(addr, len);
    mt_record_free(addr, len, MT_MUNMAP);
    int rc;
    GUARDED(rc = real_munmap(addr, len));
    return rc;
}

static void *hook_dlopen(const char *file, int flags) {
    void *h = real_dlopen(file, flags);
    if (h && !TRACE_OK) {
        int saved = mt_guard;
        mt_guard = 1;
        mt_hooks_install();
        mt_guard = saved;
        mt_record_maps();
    }
    return h;
}

static int hook_dlclose(void *h) {
    int rc = real_dlclose(h);
    if (!TRACE_OK) mt_record_maps();
    return rc;
}

static void hook__exit(int status) {
    if (mt_tracking && mt_on_exit) mt_on_exit(status);
    real__exit(status);
}

/* ---- the table of patched symbols --------------------------------------------------- */

typedef struct {
    const char *name;
    void *hook;
    void **real;
} hook_def;

static hook_def HOOKS[] = {
    {"malloc", (void *)hook_malloc, (void **)&real_malloc},
    {"calloc", (void *)hook_calloc, (void **)&real_calloc},
    {"realloc", (void *)hook_realloc, (void **)&real_realloc},
    {"reallocarray", (void *)hook_reallocarray, (void **)&real_reallocarray},
    {"free", (void *)hook_free, (void **)&real_free},
    {"posix_memalign", (void *)hook_posix_memalign, (void **)&real_posix_memalign},
    {"aligned_alloc", (void *)hook_aligned_alloc, (void **)&real_aligned_alloc},
    {"memalign", (void *)hook_memalign, (void **)&real_memalign},
    {"valloc", (void *)hook_valloc, (void **)&real_valloc},
    {"pvalloc", (void *)hook_pvalloc, (void **)&real_pvalloc},
    {"mmap", (void *)hook_mmap, (void **)&real_mmap},
    {"mmap64", (void *)hook_mmap64, (void **)&real_mmap64},
    {"munmap", (void *)hook_munmap, (void **)&real_munmap},
    {"dlopen", (void *)hook_dlopen, (void **)&real_dlopen},
    {"dlclose", (void *)hook_dlclose, (void **)&real_dlclose},
    {"_exit", (void *)hook__exit, (void **)&real__exit},
};
#define N_HOOKS (sizeof HOOKS / sizeof HOOKS[0])

static pthread_mutex_t g_hooks_lock = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t g_self_base;
static int g_initialized;

/* ---- finding the real functions ------------------------------------------------------ */

typedef struct {
    uintptr_t lo, hi;          /* the main executable's address range */
    const ElfW(Dyn) *dyn;
    ElfW(Addr) base;
    char first_lib[4096];      /* first shared object after it in search order */
} exe_info;

static int exe_callback(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    exe_info *e = data;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (e->hi == 0) {
        /* The first object is the executable. */
        e->lo = UINTPTR_MAX;
        for (int i = 0; i < info->dlpi_phnum; i++) {
            const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
            if (ph->p_type == PT_DYNAMIC) e->dyn = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
            if (ph->p_type != PT_LOAD) continue;
            uintptr_t s = info->dlpi_addr + ph->p_vaddr;
            if (s < e->lo) e->lo = s;
            if (s + ph->p_memsz > e->hi) e->hi = s + ph->p_memsz;
        }
        e->base = info->dlpi_addr;
        return 0;
    }
    if (name[0] == 0 || strstr(name, "linux-vdso") || strstr(name, "linux-gate")) return 0;
    strncpy(e->first_lib, name, sizeof e->first_lib - 1);
    return 1;
}

/* The executable imports `name` through a canonical PLT entry: a non-PIE executable makes
 * its PLT stub the global address of an imported function (for pointer equality), so
 * dlsym(RTLD_DEFAULT) returns the stub, which jumps through the very GOT slot we patch. */
static int exe_imports(const exe_info *e, const char *name) {
    if (!e->dyn) return 0;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    size_t nsyms = 0;
    const ElfW(Rela) *tables[2] = {NULL, NULL};
    size_t sizes[2] = {0, 0};
    for (const ElfW(Dyn) *d = e->dyn; d->d_tag != DT_NULL; d++) {
        uintptr_t v = d->d_un.d_ptr < e->base ? e->base + d->d_un.d_ptr : d->d_un.d_ptr;
        if (d->d_tag == DT_SYMTAB) symtab = (const ElfW(Sym) *)v;
        if (d->d_tag == DT_STRTAB) strtab = (const char *)v;
        if (d->d_tag == DT_JMPREL) tables[0] = (const ElfW(Rela) *)v;
        if (d->d_tag == DT_PLTRELSZ) sizes[0] = d->d_un.d_val;
        if (d->d_tag == DT_RELA) tables[1] = (const ElfW(Rela) *)v;
        if (d->d_tag == DT_RELASZ) sizes[1] = d->d_un.d_val;
    }
    (void)nsyms;
    if (!symtab || !strtab) return 0;
    for (int t = 0; t < 2; t++) {
        if (!tables[t]) continue;
        size_t n = sizes[t] / sizeof(ElfW(Rela));
        for (size_t i = 0; i < n; i++) {
            unsigned idx = ELF64_R_SYM(tables[t][i].r_info);
            if (idx == 0) continue;
            const ElfW(Sym) *sym = &symtab[idx];
            if (sym->st_shndx == SHN_UNDEF && strcmp(strtab + sym->st_name, name) == 0) return 1;
        }
    }
    return 0;
}

static void *resolve_real(const exe_info *e, const char *name) {
    void *p = dlsym(RTLD_DEFAULT, name);
    if (p == NULL) return NULL;
    uintptr_t a = (uintptr_t)p;
    if (a < e->lo || a >= e->hi || !exe_imports(e, name)) return p;
    /* Look the name up from the first library in search order (a preloaded allocator, or
     * libc through the dependencies): that finds the definition, not the stub. */
    if (e->first_lib[0]) {
        void *h = dlopen(e->first_lib, RTLD_NOLOAD | RTLD_LAZY);
        if (h) {
            void *q = dlsym(h, name);
            dlclose(h);
            if (q && ((uintptr_t)q < e->lo || (uintptr_t)q >= e->hi)) return q;
        }
    }
    void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
    if (libc) {
        void *q = dlsym(libc, name);
        dlclose(libc);
        if (q) return q;
    }
    return NULL;
}

int mt_hooks_init(void) {
    if (g_initialized) return 0;
    exe_info e;
    memset(&e, 0, sizeof e);
    dl_iterate_phdr(exe_callback, &e);
    for (size_t i = 0; i < N_HOOKS; i++) {
        *HOOKS[i].real = resolve_real(&e, HOOKS[i].name);
        if (*HOOKS[i].real == NULL) return -1;
    }
    Dl_info info;
    if (dladdr((void *)&hook_malloc, &info)) g_self_base = (uintptr_t)info.dli_fbase;
    g_initialized = 1;
    return 0;
}

static int is_hook_name(const char *name, size_t *index) {
    if (name[0] != 'm' && name[0] != 'c' && name[0] != 'r' && name[0] != 'f' && name[0] != 'p' &&
        name[0] != 'a' && name[0] != 'v' && name[0] != 'd' && name[0] != '_')
        return 0;
    for (size_t i = 0; i < N_HOOKS; i++) {
        if (strcmp(name, HOOKS[i].name) == 0) {
            *index = i;
            return 1;
        }
    }
    return 0;
}

typedef struct {
    int install; /* 1: point slots at hooks; 0: point them back at the real functions */
    int patched;
} patch_ctx;

static void write_slot(uintptr_t slot, void *value, uintptr_t relro_lo, uintptr_t relro_hi) {
    void **p = (void **)slot;
    if (*p == value) return;
    int in_relro = slot >= relro_lo && slot < relro_hi;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t start = slot & ~(uintptr_t)(page - 1);
    if (in_relro && mprotect((void *)start, (size_t)page, PROT_READ | PROT_WRITE) != 0) return;
    __atomic_store_n(p, value, __ATOMIC_RELEASE);
    if (in_relro) mprotect((void *)start, (size_t)page, PROT_READ);
}

static void patch_relocs(const ElfW(Rela) *rela, size_t count, const ElfW(Sym) *symtab,
                         const char *strtab, ElfW(Addr) base, patch_ctx *ctx, uintptr_t relro_lo,
                         uintptr_t relro_hi) {
    for (size_t i = 0; i < count; i++) {
        unsigned type = ELF64_R_TYPE(rela[i].r_info);
        if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) continue;
        unsigned symidx = ELF64_R_SYM(rela[i].r_info);
        if (symidx == 0) continue;
        const char *name = strtab + symtab[symidx].st_name;
        size_t h;
        if (!is_hook_name(name, &h)) continue;
        uintptr_t slot = base + rela[i].r_offset;
        void *current = *(void **)slot;
        if (ctx->install) {
            if (current != HOOKS[h].hook) {
                write_slot(slot, HOOKS[h].hook, relro_lo, relro_hi);
                ctx->patched++;
            }
        } else if (current == HOOKS[h].hook) {
            write_slot(slot, *HOOKS[h].real, relro_lo, relro_hi);
            ctx->patched++;
        }
    }
}

static inline uintptr_t dyn_ptr(ElfW(Addr) base, ElfW(Addr) value) {
    /* glibc relocates most d_ptr entries in memory; some objects keep them relative. */
    return value < base ? base + value : value;
}

static int patch_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    patch_ctx *ctx = data;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (info->dlpi_addr == g_self_base && g_self_base != 0) return 0;
    if (strstr(name, "linux-vdso") || strstr(name, "ld-linux") || strstr(name, "/ld-") ||
        strstr(name, "linux-gate"))
        return 0;
    const ElfW(Dyn) *dyn = NULL;
    uintptr_t relro_lo = 0, relro_hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC) dyn = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
        if (ph->p_type == PT_GNU_RELRO) {
            long page = sysconf(_SC_PAGESIZE);
            relro_lo = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)(page - 1);
            relro_hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        }
    }
    if (!dyn) return 0;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const ElfW(Rela) *jmprel = NULL, *rela = NULL;
    size_t jmprel_size = 0, rela_size = 0;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
        case DT_SYMTAB: symtab = (const ElfW(Sym) *)dyn_ptr(info->dlpi_addr, dyn->d_un.d_ptr); break;
        case DT_STRTAB: strtab = (const char *)dyn_ptr(info->dlpi_addr, dyn->d_un.d_ptr); break;
        case DT_JMPREL: jmprel = (const ElfW(Rela) *)dyn_ptr(info->dlpi_addr, dyn->d_un.d_ptr); break;
        case DT_PLTRELSZ: jmprel_size = dyn->d_un.d_val; break;
        case DT_RELA: rela = (const ElfW(Rela) *)dyn_ptr(info->dlpi_addr, dyn->d_un.d_ptr); break;
        case DT_RELASZ: rela_size = dyn->d_un.d_val; break;
        default: break;
        }
    }
    if (!symtab || !strtab) return 0;
    if (jmprel)
        patch_relocs(jmprel, jmprel_size / sizeof(ElfW(Rela)), symtab, strtab, info->dlpi_addr, ctx,
                     relro_lo, relro_hi);
    if (rela)
        patch_relocs(rela, rela_size / sizeof(ElfW(Rela)), symtab, strtab, info->dlpi_addr, ctx,
                     relro_lo, relro_hi);
    return 0;
}

int mt_hooks_install(void) {
    patch_ctx ctx = {1, 0};
    pthread_mutex_lock(&g_hooks_lock);
    dl_iterate_phdr(patch_object, &ctx);
    pthread_mutex_unlock(&g_hooks_lock);
    return ctx.patched;
}

void mt_hooks_uninstall(void) {
    int saved = mt_guard;
    mt_guard = 1;
    patch_ctx ctx = {0, 0};
    pthread_mutex_lock(&g_hooks_lock);
    dl_iterate_phdr(patch_object, &ctx);
    pthread_mutex_unlock(&g_hooks_lock);
    mt_guard = saved;
}

/* ---- Python allocator domains ------------------------------------------------------- */

static PyMemAllocatorEx g_orig_mem, g_orig_obj;
static int g_pymem_installed;

static void *pm_malloc(void *ctx, size_t n) {
    PyMemAllocatorEx *a = ctx;
    if (TRACE_OK) return a->malloc(a->ctx, n);
    mt_guard = 1;
    void *p = a->malloc(a->ctx, n);
    mt_guard = 0;
    if (p) mt_record_alloc(p, n, MT_PYMALLOC_MALLOC, CALLER);
    return p;
}

static void *pm_calloc(void *ctx, size_t n, size_t size) {
    PyMemAllocatorEx *a = ctx;
    if (TRACE_OK) return a->calloc(a->ctx, n, size);
    mt_guard = 1;
    void *p = a->calloc(a->ctx, n, size);
    mt_guard = 0;
    if (p) mt_record_alloc(p, n * size, MT_PYMALLOC_CALLOC, CALLER);
    return p;
}

static void *pm_realloc(void *ctx, void *old, size_t n) {
    PyMemAllocatorEx *a = ctx;
    if (TRACE_OK) return a->realloc(a->ctx, old, n);
    if (old) mt_record_free(old, 0, MT_PYMALLOC_REALLOC);
    mt_guard = 1;
    void *p = a->realloc(a->ctx, old, n);
    mt_guard = 0;
    if (p) mt_record_alloc(p, n, MT_PYMALLOC_REALLOC, CALLER);
    return p;
}

static void pm_free(void *ctx, void *p) {
    PyMemAllocatorEx *a = ctx;
    if (p && !TRACE_OK) mt_record_free(p, 0, MT_PYMALLOC_FREE);
    int saved = mt_guard;
    mt_guard = 1;
    a->free(a->ctx, p);
    mt_guard = saved;
}

void mt_pymem_install(void) {
    if (g_pymem_installed) return;
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &g_orig_mem);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &g_orig_obj);
    PyMemAllocatorEx mem = {&g_orig_mem, pm_malloc, pm_calloc, pm_realloc, pm_free};
    PyMemAllocatorEx obj = {&g_orig_obj, pm_malloc, pm_calloc, pm_realloc, pm_free};
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj);
    g_pymem_installed = 1;
}

void mt_pymem_uninstall(void) {
    if (!g_pymem_installed) return;
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &g_orig_mem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &g_orig_obj);
    g_pymem_installed = 0;
}
