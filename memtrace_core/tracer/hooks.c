/* GOT/PLT patching and the hook functions (see hooks.h). */
#define _GNU_SOURCE
#include <Python.h>

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <malloc.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "callas.h"
#include "hooks.h"
#include "recorder.h"
#include "term.h"
#include "unwinder.h"
#include "sampler.h"

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
typedef void *(*dlmopen_fn)(Lmid_t, const char *, int);
typedef void *(*dlsym_fn)(void *, const char *);
typedef void *(*dlvsym_fn)(void *, const char *, const char *);
typedef int (*dlclose_fn)(void *);
typedef void (*exit_fn)(int);
typedef int (*prctl_fn)(int, unsigned long, unsigned long, unsigned long, unsigned long);
typedef int (*setname_fn)(pthread_t, const char *);

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
static dlmopen_fn real_dlmopen;
static dlsym_fn real_dlsym;
static dlvsym_fn real_dlvsym;
static dlclose_fn real_dlclose;
static exit_fn real__exit;
static exit_fn real__Exit;
static exit_fn real_quick_exit;
static prctl_fn real_prctl;
static setname_fn real_pthread_setname_np;

/* ---- hooks -------------------------------------------------------------------------- */

#define TRACE_OK_FAST LIKELY(!mt_tracking)
#define TRACE_OK (TRACE_OK_FAST || mt_guard)

/* Sampling (sampler.h): an allocation that does not reach its thread's next sample point is
 * not recorded, nor is the free of an address surely never sampled. The real call still runs
 * guarded, as in exact mode: what it allocates inside (pymalloc's arenas, an allocator built
 * on another) is never recorded on its own. */
#define TAKEN(size) (!mt_sample_mean || mt_sample_take(size))
#define UNSAMPLED(p) (mt_sample_mean && !mt_sample_maybe(p))

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

/* Exact mode (and sampling with an allocator that is not glibc's): everything but the
 * check that tracing is on is in the *_traced functions, which the hooks tail-call, so that
 * CALLER read there is the hook's caller. */
static inline __attribute__((always_inline)) void *malloc_recorded(size_t size, uintptr_t ra,
                                                                    uintptr_t cfa) {
    if (mt_guard) return real_malloc(size);
    void *p;
    GUARDED(p = real_malloc(size));
    if (p && TAKEN(size)) mt_record_alloc(p, size, MT_MALLOC, ra, cfa);
    return p;
}

static __attribute__((noinline)) void *malloc_traced(size_t size) {
    return malloc_recorded(size, CALLER);
}

static void *hook_malloc(size_t size) {
    if (TRACE_OK_FAST) return real_malloc(size);
    return malloc_traced(size);
}

static inline __attribute__((always_inline)) void *calloc_recorded(size_t n, size_t size,
                                                                    uintptr_t ra, uintptr_t cfa) {
    if (mt_guard) return real_calloc(n, size);
    void *p;
    GUARDED(p = real_calloc(n, size));
    if (p && TAKEN(n * size)) mt_record_alloc(p, n * size, MT_CALLOC, ra, cfa);
    return p;
}

static __attribute__((noinline)) void *calloc_traced(size_t n, size_t size) {
    return calloc_recorded(n, size, CALLER);
}

static void *hook_calloc(size_t n, size_t size) {
    if (TRACE_OK_FAST) return real_calloc(n, size);
    return calloc_traced(n, size);
}

static __attribute__((noinline)) void free_traced(void *p) {
    if (mt_guard || !p) {
        real_free(p);
        return;
    }
    if (!UNSAMPLED(p)) mt_record_free(p, 0, MT_FREE);
    GUARDED(real_free(p));
}

static void hook_free(void *p) {
    if (TRACE_OK_FAST) {
        real_free(p);
        return;
    }
    free_traced(p);
}

/* Sampling with glibc's allocator (mt_sample_direct): malloc, calloc, realloc and free are
 * patched to hooks of their own (HOOKS[].sampled), which decide first whether the call is
 * recorded; a call that is not (nearly every one) goes straight to the real function as a
 * tail call: no frame, no guard, and no check that tracing is on (a countdown taken off
 * while it is not is harmless: the call is passed on all the same; the slow paths check).
 * The guard is what keeps calls made *inside* the real function from being recorded, and
 * glibc's malloc, calloc, realloc and free make none through the PLT (their mmap and munmap
 * are internal). Another allocator may (jemalloc maps its chunks with the libc's mmap), so
 * with one the exact hooks stay, with the guard around every call. The decision is a
 * subtraction and a compare for an allocation (mt_sample_skip), one load of the static
 * first-level filter for a free: 10 and 11 instructions with the jump on, where the exact
 * hooks' sampling branch took 16 and 17 (bench_run's malloc/free workload: 11 M of each).
 * A hook pointer kept across runs (dlsym's) stays right: in exact mode the first-level
 * filter is all ones and no countdown is of the run (mt_sampler_start), so every call
 * takes the slow path, which records as the exact hook would. */
static __attribute__((noinline)) void *malloc_sampled(size_t size) {
    uintptr_t ra = (uintptr_t)__builtin_return_address(0);
    uintptr_t cfa = (uintptr_t)__builtin_frame_address(0) + 2 * sizeof(void *);
    if (!mt_sample_direct) return malloc_recorded(size, ra, cfa); /* kept across runs */
    /* mt_sample_skip failed: the distance ran out (or was never drawn in this run). */
    if (!mt_sample_slow(size) || mt_guard) return real_malloc(size);
    void *p;
    GUARDED(p = real_malloc(size));
    if (p) mt_record_alloc(p, size, MT_MALLOC, ra, cfa);
    return p;
}

static void *hook_malloc_sampled(size_t size) {
    if (LIKELY(mt_sample_skip(size)) || UNLIKELY(TRACE_OK_FAST)) return real_malloc(size);
    return malloc_sampled(size);
}

static __attribute__((noinline)) void *calloc_sampled(size_t n, size_t size) {
    uintptr_t ra = (uintptr_t)__builtin_return_address(0);
    uintptr_t cfa = (uintptr_t)__builtin_frame_address(0) + 2 * sizeof(void *);
    if (!mt_sample_direct) return calloc_recorded(n, size, ra, cfa);
    size_t bytes;
    /* An overflowing n * size fails in calloc: nothing to sample. */
    if (__builtin_mul_overflow(n, size, &bytes) || !mt_sample_slow(bytes) || mt_guard)
        return real_calloc(n, size);
    void *p;
    GUARDED(p = real_calloc(n, size));
    if (p) mt_record_alloc(p, bytes, MT_CALLOC, ra, cfa);
    return p;
}

static void *hook_calloc_sampled(size_t n, size_t size) {
    size_t bytes;
    if ((!__builtin_mul_overflow(n, size, &bytes) && LIKELY(mt_sample_skip(bytes))) ||
        UNLIKELY(TRACE_OK_FAST))
        return real_calloc(n, size);
    return calloc_sampled(n, size);
}

static void hook_free_sampled(void *p) {
    if (LIKELY(!mt_sample_maybe_l1(p)) || UNLIKELY(TRACE_OK_FAST)) {
        real_free(p);
        return;
    }
    free_traced(p);
}

/* realloc: the old block is recorded as freed *before* the call, so no other thread can be
 * handed that address and record it ahead of our free. A failed realloc (old block kept)
 * re-records the old block with its usable size: the one place a figure can be inexact, and
 * only when memory ran out. */
static void *realloc_common(void *old, size_t size, void *(*call)(void *, size_t, size_t),
                            size_t a, size_t b, int allocator, uintptr_t ra, uintptr_t cfa) {
    if (TRACE_OK) return call(old, a, b);
    int freed = old && !UNSAMPLED(old) && mt_record_free(old, 0, allocator);
    void *p;
    GUARDED(p = call(old, a, b));
    if (p) {
        if (TAKEN(size)) mt_record_alloc(p, size, allocator, ra, cfa);
    } else if (freed && size != 0) {
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

static __attribute__((noinline)) void *realloc_traced(void *old, size_t size) {
    return realloc_common(old, size, call_realloc, size, 0, MT_REALLOC, CALLER);
}

/* Sampling, glibc's allocator (see hook_malloc_sampled): a realloc whose old block is surely
 * not sampled and whose new size leaves the distance unreached is passed on. The distance
 * is taken off before the call: one that fails (out of memory) has used some up. */
static void *hook_realloc_sampled(void *old, size_t size) {
    if ((LIKELY(!mt_sample_maybe_l1(old)) && LIKELY(mt_sample_skip(size))) ||
        UNLIKELY(TRACE_OK_FAST))
        return real_realloc(old, size);
    return realloc_traced(old, size);
}

static int hook_posix_memalign(void **out, size_t align, size_t size) {
    if (TRACE_OK) return real_posix_memalign(out, align, size);
    int rc;
    GUARDED(rc = real_posix_memalign(out, align, size));
    if (rc == 0 && *out && TAKEN(size)) mt_record_alloc(*out, size, MT_POSIX_MEMALIGN, CALLER);
    return rc;
}

static void *hook_aligned_alloc(size_t align, size_t size) {
    if (TRACE_OK) return real_aligned_alloc(align, size);
    void *p;
    GUARDED(p = real_aligned_alloc(align, size));
    if (p && TAKEN(size)) mt_record_alloc(p, size, MT_ALIGNED_ALLOC, CALLER);
    return p;
}

static void *hook_memalign(size_t align, size_t size) {
    if (TRACE_OK) return real_memalign(align, size);
    void *p;
    GUARDED(p = real_memalign(align, size));
    if (p && TAKEN(size)) mt_record_alloc(p, size, MT_MEMALIGN, CALLER);
    return p;
}

static void *hook_valloc(size_t size) {
    if (TRACE_OK) return real_valloc(size);
    void *p;
    GUARDED(p = real_valloc(size));
    if (p && TAKEN(size)) mt_record_alloc(p, size, MT_VALLOC, CALLER);
    return p;
}

static void *hook_pvalloc(size_t size) {
    if (TRACE_OK) return real_pvalloc(size);
    void *p;
    GUARDED(p = real_pvalloc(size));
    if (p && TAKEN(size)) mt_record_alloc(p, size, MT_PVALLOC, CALLER);
    return p;
}

#define MT_RESERVE_MIN ((size_t)1 << 30)

static void *mmap_common(mmap_fn real, void *addr, size_t len, int prot, int flags, int fd,
                         off_t off, uintptr_t ra, uintptr_t cfa) {
    if (TRACE_OK) return real(addr, len, prot, flags, fd, off);
    /* MAP_FIXED replaces whatever was mapped there: that range is unmapped first. */
    if ((flags & MAP_FIXED) && addr) mt_record_free(addr, len, MT_MUNMAP);
    void *p;
    GUARDED(p = real(addr, len, prot, flags, fd, off));
    /* Address space set aside rather than memory, recorded apart from the heap: PROT_NONE (a
     * runtime's heap to be, committed later), or MAP_NORESERVE of MT_RESERVE_MIN or more (an
     * allocator's arena reserved ahead: mimalloc's 1 GiB). Smaller MAP_NORESERVE mappings
     * are allocators' extents sized to what they hold (jemalloc maps every extent so, as
     * polars' runtime does): memory in use, as any mmap. */
    int reserve = prot == PROT_NONE || ((flags & MAP_NORESERVE) && len >= MT_RESERVE_MIN);
    if (p != MAP_FAILED) mt_record_alloc(p, len, reserve ? MT_MMAP_RESERVE : MT_MMAP, ra, cfa);
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

/* ---- the loader: called as the hook's caller (callas.h) ------------------------------ */

/* Call a loader function so that it sees the hook's caller (`ra`) as its caller. The frame
 * calling this must be the hook itself: the unwinding context is taken here, inlined. */
#define AS_CALLER(result, real, ra, a, b, c)                                            \
    do {                                                                                \
        mt_dlcall call_;                                                                \
        call_.gadget = mt_caller_gadget(ra);                                            \
        if (call_.gadget == 0) {                                                        \
            result = ((void *(*)(uintptr_t, uintptr_t, uintptr_t))(real))(a, b, c);     \
            break;                                                                      \
        }                                                                               \
        unw_getcontext(&call_.context);                                                 \
        /* entries below this frame were left by a longjmp out of a loader call */      \
        while (mt_t_dlcall && (uintptr_t)mt_t_dlcall < (uintptr_t)&call_)               \
            mt_t_dlcall = mt_t_dlcall->prev;                                            \
        call_.prev = mt_t_dlcall;                                                       \
        call_.id = ++mt_t_dlcalls;                                                      \
        mt_t_dlcall = &call_;                                                           \
        result = mt_call_as((void *)(real), call_.gadget, a, b, c);                     \
        mt_t_dlcall = call_.prev;                                                       \
    } while (0)

/* After a library was loaded: patch it (and whatever it brought), send the new maps. */
static void after_load(void) {
    if (TRACE_OK) return;
    mt_guard = 1;
    mt_hooks_install_new();
    mt_guard = 0;
    mt_record_maps();
}

static __attribute__((noinline)) void *hook_dlopen(const char *file, int flags) {
    void *h;
    AS_CALLER(h, real_dlopen, (uintptr_t)__builtin_return_address(0), (uintptr_t)file,
              (uintptr_t)flags, 0);
    if (h) after_load();
    return h;
}

static __attribute__((noinline)) void *hook_dlmopen(Lmid_t lmid, const char *file, int flags) {
    void *h;
    AS_CALLER(h, real_dlmopen, (uintptr_t)__builtin_return_address(0), (uintptr_t)lmid,
              (uintptr_t)file, (uintptr_t)flags);
    if (h) after_load();
    return h;
}

static int hook_dlclose(void *h) {
    int rc = real_dlclose(h);
    if (!TRACE_OK) mt_record_maps();
    return rc;
}

static void *hook_for(const char *name, void *found);

/* dlsym/dlvsym: a program that looks an allocator up (ctypes.CDLL(None).malloc, plugin
 * loaders, allocator shims) gets the hook while tracing, so its calls are recorded. */
static __attribute__((noinline)) void *hook_dlsym(void *handle, const char *name) {
    void *p;
    AS_CALLER(p, real_dlsym, (uintptr_t)__builtin_return_address(0), (uintptr_t)handle,
              (uintptr_t)name, 0);
    return hook_for(name, p);
}

static __attribute__((noinline)) void *hook_dlvsym(void *handle, const char *name,
                                                    const char *version) {
    void *p;
    AS_CALLER(p, real_dlvsym, (uintptr_t)__builtin_return_address(0), (uintptr_t)handle,
              (uintptr_t)name, (uintptr_t)version);
    return hook_for(name, p);
}

/* ---- process exit: the trailer is written whatever way the process ends ---------------- */

/* Write the trailer with this status. Not from inside the tracer: a signal handler that
 * calls exit() while this thread holds the recorder's lock would wait for itself. */
static void stop_for_exit(int status, int known) {
    if (mt_guard || !mt_recorder_running()) return;
    mt_term_stop_begin();
    mt_recorder_stop(status, known);
    mt_term_stop_end(); /* a SIGTERM meanwhile: the process ends by it, as it would have */
}

static void hook__exit(int status) {
    stop_for_exit(status, 1);
    real__exit(status);
}

static void hook__Exit(int status) {
    stop_for_exit(status, 1);
    real__Exit(status);
}

/* quick_exit runs the at_quick_exit handlers, not the atexit ones: ours (registered before
 * the program's) runs after them, with the status this hook saw. */
static volatile int g_quick_status, g_quick_known;

static void hook_quick_exit(int status) {
    g_quick_status = status;
    g_quick_known = 1;
    real_quick_exit(status);
}

static void at_quick_exit_handler(void) { stop_for_exit(g_quick_status, g_quick_known); }

/* exit() and a return from main run the atexit/on_exit handlers (ours, registered when
 * tracing first started, after those registered later: their allocations are recorded). */
static void on_exit_handler(int status, void *arg) {
    (void)arg;
    stop_for_exit(status, 1);
}

/* ---- thread names --------------------------------------------------------------------- */

static int hook_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
                      unsigned long a5) {
    int rc = real_prctl(option, a2, a3, a4, a5);
    if (rc == 0 && option == PR_SET_NAME && !TRACE_OK && a2) {
        char name[16];
        strncpy(name, (const char *)a2, 15);
        name[15] = 0;
        mt_thread_renamed(pthread_self(), name);
    }
    return rc;
}

static int hook_pthread_setname_np(pthread_t thread, const char *name) {
    int rc = real_pthread_setname_np(thread, name);
    if (rc == 0 && !TRACE_OK && name) mt_thread_renamed(thread, name);
    return rc;
}

/* ---- the table of patched symbols --------------------------------------------------- */

typedef struct {
    const char *name;
    void *hook;
    void **real;
    void *sampled; /* the hook patched in while mt_sample_direct, if not `hook` */
    int unwinder_only; /* patched in libunwind alone (unwinder.h) */
} hook_def;

static hook_def HOOKS[] = {
    {"malloc", (void *)hook_malloc, (void **)&real_malloc, (void *)hook_malloc_sampled},
    {"calloc", (void *)hook_calloc, (void **)&real_calloc, (void *)hook_calloc_sampled},
    {"realloc", (void *)hook_realloc, (void **)&real_realloc, (void *)hook_realloc_sampled},
    {"reallocarray", (void *)hook_reallocarray, (void **)&real_reallocarray},
    {"free", (void *)hook_free, (void **)&real_free, (void *)hook_free_sampled},
    {"posix_memalign", (void *)hook_posix_memalign, (void **)&real_posix_memalign},
    {"aligned_alloc", (void *)hook_aligned_alloc, (void **)&real_aligned_alloc},
    {"memalign", (void *)hook_memalign, (void **)&real_memalign},
    {"valloc", (void *)hook_valloc, (void **)&real_valloc},
    {"pvalloc", (void *)hook_pvalloc, (void **)&real_pvalloc},
    {"mmap", (void *)hook_mmap, (void **)&real_mmap},
    {"mmap64", (void *)hook_mmap64, (void **)&real_mmap64},
    {"munmap", (void *)hook_munmap, (void **)&real_munmap},
    {"dlopen", (void *)hook_dlopen, (void **)&real_dlopen},
    {"dlmopen", (void *)hook_dlmopen, (void **)&real_dlmopen},
    {"dlsym", (void *)hook_dlsym, (void **)&real_dlsym},
    {"dlvsym", (void *)hook_dlvsym, (void **)&real_dlvsym},
    {"dlclose", (void *)hook_dlclose, (void **)&real_dlclose},
    {"_exit", (void *)hook__exit, (void **)&real__exit},
    {"_Exit", (void *)hook__Exit, (void **)&real__Exit},
    {"quick_exit", (void *)hook_quick_exit, (void **)&real_quick_exit},
    {"prctl", (void *)hook_prctl, (void **)&real_prctl},
    {"pthread_setname_np", (void *)hook_pthread_setname_np, (void **)&real_pthread_setname_np},
    {"sigprocmask", (void *)mt_unwinder_sigprocmask, (void **)&mt_real_sigprocmask, NULL, 1},
    {"mincore", (void *)mt_unwinder_mincore, (void **)&mt_real_mincore, NULL, 1},
    {"read", (void *)mt_unwinder_read, (void **)&mt_real_read, NULL, 1},
    {"syscall", (void *)mt_unwinder_syscall, (void **)&mt_real_syscall, NULL, 1},
};
#define N_HOOKS (sizeof HOOKS / sizeof HOOKS[0])

/* The hook slots are patched to in this run: the sampled one while mt_sample_direct. */
static inline void *hook_now(size_t i) {
    return mt_sample_direct && HOOKS[i].sampled ? HOOKS[i].sampled : HOOKS[i].hook;
}

/* Whether `value` is one of hook i's functions (either variant). */
static inline int is_hook_of(size_t i, const void *value) {
    return value == HOOKS[i].hook || (HOOKS[i].sampled && value == HOOKS[i].sampled);
}

int mt_hooks_glibc_allocator = 0;
static pthread_mutex_t g_hooks_lock = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t g_self_base;
static uintptr_t g_unwinder_fn; /* an address in libunwind: which object is libunwind */
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

/* Whether `fn` is defined in glibc's libc.so (see mt_sample_direct). */
static int from_glibc(void *fn) {
    Dl_info info;
    if (!dladdr(fn, &info) || !info.dli_fname) return 0;
    const char *base = strrchr(info.dli_fname, '/');
    base = base ? base + 1 : info.dli_fname;
    return strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-2.", 7) == 0;
}

static void index_hook_names(void);

int mt_hooks_init(void) {
    if (g_initialized) return 0;
    index_hook_names();
    exe_info e;
    memset(&e, 0, sizeof e);
    dl_iterate_phdr(exe_callback, &e);
    for (size_t i = 0; i < N_HOOKS; i++) {
        *HOOKS[i].real = resolve_real(&e, HOOKS[i].name);
        if (*HOOKS[i].real == NULL) return -1;
    }
    Dl_info info;
    if (dladdr((void *)&hook_malloc, &info)) g_self_base = (uintptr_t)info.dli_fbase;
    g_unwinder_fn = (uintptr_t)&unw_backtrace;
    mt_hooks_glibc_allocator = from_glibc(real_malloc) && from_glibc(real_calloc) &&
                               from_glibc(real_free);
    /* Once per process: these handlers stay registered (they do nothing when not tracing). */
    on_exit(on_exit_handler, NULL);
    at_quick_exit(at_quick_exit_handler);
    g_initialized = 1;
    return 0;
}

/* The hooks whose names start with each byte. Patching asks about the symbol of every
 * relocation of every loaded object (pandas' import: ~38,000 of them, ~290 instructions each
 * with a string compare against every hook name): a name is now compared only with the hooks
 * that share its first two bytes, with no call for the rest. */
static uint32_t g_names_by_first[256];
_Static_assert(N_HOOKS <= 32, "one bit per hook in g_names_by_first");

static void index_hook_names(void) {
    for (size_t i = 0; i < N_HOOKS; i++)
        g_names_by_first[(unsigned char)HOOKS[i].name[0]] |= 1u << i;
}

static int is_hook_name(const char *name, size_t *index) {
    uint32_t candidates = g_names_by_first[(unsigned char)name[0]];
    while (candidates) {
        size_t i = (size_t)__builtin_ctz(candidates);
        candidates &= candidates - 1;
        const char *hook = HOOKS[i].name; /* every hook name has two bytes or more */
        if (name[1] == hook[1] && strcmp(name + 2, hook + 2) == 0) {
            *index = i;
            return 1;
        }
    }
    return 0;
}

static int real_index(void *value, size_t *index) {
    for (size_t i = 0; i < N_HOOKS; i++) {
        if (*HOOKS[i].real == value) {
            *index = i;
            return 1;
        }
    }
    return 0;
}

static int hook_index(void *value, size_t *index) {
    for (size_t i = 0; i < N_HOOKS; i++) {
        if (is_hook_of(i, value)) {
            *index = i;
            return 1;
        }
    }
    return 0;
}

static void *hook_for(const char *name, void *found) {
    size_t h;
    if (found == NULL || name == NULL || !mt_tracking || !is_hook_name(name, &h) ||
        HOOKS[h].unwinder_only)
        return found;
    /* Only the definition we hook: an interposer's RTLD_NEXT lookup of the function it
     * wraps finds another one, and must keep it. */
    return found == *HOOKS[h].real ? hook_now(h) : found;
}

/* ---- patching ------------------------------------------------------------------------ */

/* The protection of the pages of the process, from /proc/self/maps, read at most once per
 * pass and only when a slot is not on a page known to be writable. */
typedef struct {
    uintptr_t lo, hi;
    int prot;
} prot_range;

typedef struct {
    int install; /* 1: point slots at hooks; 0: point them back at the real functions */
    int only_new; /* install: skip the objects patched by the passes before (g_seen) */
    int patched;
    int maps_read;
    prot_range *ranges;
    size_t n_ranges;
} patch_ctx;

/* The objects the install passes since the last full one went through, each known by its
 * load address and program headers (unique among loaded objects). Nothing unloaded since
 * (the loader's count of unloads, dlpi_subs, unchanged), they are loaded still and their
 * slots hooked: a pass after a dlopen patches only the objects not among them. Walking
 * every relocation of every object at each dlopen cost numpy's import ~15 ms, pandas' more
 * (it loads dozens of extension modules). */
typedef struct {
    uintptr_t addr;
    const void *phdr;
} seen_object;
static seen_object *g_seen;
static size_t g_n_seen, g_seen_cap;
static unsigned long long g_seen_subs;
static int g_seen_valid;

static int seen_before(const struct dl_phdr_info *info) {
    for (size_t i = 0; i < g_n_seen; i++)
        if (g_seen[i].addr == info->dlpi_addr && g_seen[i].phdr == (const void *)info->dlpi_phdr)
            return 1;
    return 0;
}

static void remember(const struct dl_phdr_info *info) {
    if (g_n_seen == g_seen_cap) {
        size_t cap = g_seen_cap ? g_seen_cap * 2 : 256;
        seen_object *bigger = realloc(g_seen, cap * sizeof *bigger);
        if (!bigger) {
            g_seen_valid = 0; /* the next pass is a full one */
            return;
        }
        g_seen = bigger;
        g_seen_cap = cap;
    }
    g_seen[g_n_seen++] = (seen_object){info->dlpi_addr, info->dlpi_phdr};
}

static void read_protections(patch_ctx *ctx) {
    ctx->maps_read = 1;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    while (text) {
        if (len + 4096 > cap) {
            char *bigger = realloc(text, cap * 2);
            if (!bigger) break;
            text = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, text + len, cap - len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    if (!text) return;
    text[len] = 0;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    ctx->ranges = malloc((lines + 1) * sizeof *ctx->ranges);
    if (ctx->ranges) {
        char *p = text;
        while (*p) {
            char *end;
            uintptr_t lo = strtoull(p, &end, 16);
            if (*end != '-') break;
            uintptr_t hi = strtoull(end + 1, &end, 16);
            if (*end != ' ') break;
            int prot = (end[1] == 'r' ? PROT_READ : 0) | (end[2] == 'w' ? PROT_WRITE : 0) |
                       (end[3] == 'x' ? PROT_EXEC : 0);
            ctx->ranges[ctx->n_ranges++] = (prot_range){lo, hi, prot};
            p = strchr(end, '\n');
            if (!p) break;
            p++;
        }
    }
    free(text);
}

/* The page's protection now, or -1 when it is not mapped. */
static int page_protection(patch_ctx *ctx, uintptr_t addr) {
    if (!ctx->maps_read) read_protections(ctx);
    size_t lo = 0, hi = ctx->n_ranges;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (addr < ctx->ranges[mid].lo) {
            hi = mid;
        } else if (addr >= ctx->ranges[mid].hi) {
            lo = mid + 1;
        } else {
            return ctx->ranges[mid].prot;
        }
    }
    return -1;
}

/* One loaded object being patched: where its pages are surely writable. */
typedef struct {
    const struct dl_phdr_info *info;
    uintptr_t relro_lo, relro_hi; /* pages made read-only after relocation */
    int unwinder;                 /* it is libunwind (unwinder.h) */
} object;

static int surely_writable(const object *o, uintptr_t slot) {
    if (slot >= o->relro_lo && slot < o->relro_hi) return 0;
    for (int i = 0; i < o->info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &o->info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t lo = o->info->dlpi_addr + ph->p_vaddr;
        if (slot >= lo && slot + sizeof(void *) <= lo + ph->p_memsz) return (ph->p_flags & PF_W) != 0;
    }
    return 0;
}

/* Replace `expected` by `value` in a slot, atomically: a program storing its own pointer
 * there meanwhile keeps it. A read-only page (RELRO) is writable only for the store, then
 * gets its protection back. Returns 1 when the slot was written. */
static int swap_slot(void **p, void *expected, void *value) {
    return __atomic_compare_exchange_n(p, &expected, value, 0, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}

static int write_slot(patch_ctx *ctx, const object *o, uintptr_t slot, void *expected,
                      void *value) {
    void **p = (void **)slot;
    if (surely_writable(o, slot)) return swap_slot(p, expected, value);
    int prot = page_protection(ctx, slot);
    if (prot < 0) return 0;
    if (prot & PROT_WRITE) return swap_slot(p, expected, value);
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t start = slot & ~(uintptr_t)(page - 1);
    if (mprotect((void *)start, (size_t)page, prot | PROT_WRITE) != 0) return 0;
    int done = swap_slot(p, expected, value);
    mprotect((void *)start, (size_t)page, prot);
    return done;
}

/* Install: point a slot bound to hook h at this run's hook, when it holds the real function,
 * the other variant of the hook (a forked child's, whose run samples otherwise), or anything
 * at all when `any` (a lazily bound PLT slot). Uninstall: back to the real function, only
 * while it holds one of our hooks (never what the program stored there since). */
static void patch_slot(patch_ctx *ctx, const object *o, uintptr_t slot, size_t h, int any) {
    void *current = __atomic_load_n((void **)slot, __ATOMIC_ACQUIRE);
    if (ctx->install) {
        void *now = hook_now(h);
        if (current != now && (any || current == *HOOKS[h].real || is_hook_of(h, current)))
            ctx->patched += write_slot(ctx, o, slot, current, now);
    } else if (is_hook_of(h, current)) {
        ctx->patched += write_slot(ctx, o, slot, current, *HOOKS[h].real);
    }
    if (HOOKS[h].hook == (void *)mt_unwinder_sigprocmask)
        __atomic_store_n(&mt_unwinder_patched,
                         __atomic_load_n((void **)slot, __ATOMIC_ACQUIRE) == HOOKS[h].hook,
                         __ATOMIC_RELAXED);
}

/* Every relocated slot bound to a hooked function: JUMP_SLOT (calls through the PLT),
 * GLOB_DAT (the function's address taken in code), R_X86_64_64 (the address stored in
 * data: allocator tables, xxxMemSetup-style pointers, static structs), and IRELATIVE when
 * its resolver picked one. A data slot is patched only while it still holds the real
 * function (the program may have stored something else there), and restored only while it
 * holds our hook. */
static void patch_relocs(const ElfW(Rela) *rela, size_t count, const ElfW(Sym) *symtab,
                         const char *strtab, const object *o, patch_ctx *ctx) {
    ElfW(Addr) base = o->info->dlpi_addr;
    for (size_t i = 0; i < count; i++) {
        unsigned type = ELF64_R_TYPE(rela[i].r_info);
        size_t h;
        uintptr_t slot = base + rela[i].r_offset;
        if (type == R_X86_64_IRELATIVE) {
            void *value = *(void **)slot;
            if (!real_index(value, &h) && !hook_index(value, &h)) continue;
        } else if (type == R_X86_64_JUMP_SLOT || type == R_X86_64_GLOB_DAT ||
                   type == R_X86_64_64) {
            unsigned symidx = ELF64_R_SYM(rela[i].r_info);
            if (symidx == 0 || !is_hook_name(strtab + symtab[symidx].st_name, &h)) continue;
        } else {
            continue;
        }
        if (HOOKS[h].unwinder_only && !o->unwinder) continue;
        /* A lazily bound JUMP_SLOT still holds its PLT stub: patched all the same. */
        patch_slot(ctx, o, slot, h, type == R_X86_64_JUMP_SLOT);
    }
}

static inline uintptr_t dyn_ptr(ElfW(Addr) base, ElfW(Addr) value) {
    /* glibc relocates most d_ptr entries in memory; some objects keep them relative. */
    return value < base ? base + value : value;
}

static int patch_one(struct dl_phdr_info *info, patch_ctx *ctx);

static int patch_object(struct dl_phdr_info *info, size_t size, void *data) {
    patch_ctx *ctx = data;
    if (ctx->install) {
        unsigned long long subs =
            size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs
                ? info->dlpi_subs
                : ~0ULL;
        if (ctx->only_new && (subs != g_seen_subs || subs == ~0ULL)) {
            ctx->only_new = 0; /* something was unloaded: every object again */
            g_n_seen = 0;
        }
        g_seen_subs = subs;
        if (ctx->only_new && seen_before(info)) return 0;
        remember(info);
    }
    return patch_one(info, ctx);
}

/* The dynamic loader allocates through pointers of its own (glibc's __rtld_malloc,
 * __rtld_calloc, __rtld_realloc and __rtld_free, set to the C library's functions once it is
 * loaded, in the loader's RELRO data): no relocation names them, so they are found by value
 * in its writable segment. These are dlopen's bookkeeping and the dynamic TLS blocks of every
 * thread (a dlopen'ed library's __thread data, allocated at a thread's first use and freed
 * with the thread's stack). All four slots or none are patched: blocks allocated through a
 * hook and freed where memtrace does not look would read as leaks. */
static const char *const LOADER_ALLOCATORS[] = {"malloc", "calloc", "realloc", "free"};
#define N_LOADER_ALLOCATORS 4

static void patch_loader(struct dl_phdr_info *info, const object *o, patch_ctx *ctx) {
    size_t hooks[N_LOADER_ALLOCATORS];
    uintptr_t slots[N_LOADER_ALLOCATORS] = {0};
    for (int k = 0; k < N_LOADER_ALLOCATORS; k++)
        if (!is_hook_name(LOADER_ALLOCATORS[k], &hooks[k]) || !*HOOKS[hooks[k]].real) return;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) continue;
        uintptr_t lo = (info->dlpi_addr + ph->p_vaddr + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
        uintptr_t hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        for (uintptr_t slot = lo; slot + sizeof(void *) <= hi; slot += sizeof(void *)) {
            void *value = __atomic_load_n((void **)slot, __ATOMIC_RELAXED);
            for (int k = 0; k < N_LOADER_ALLOCATORS; k++) {
                size_t h = hooks[k];
                if (value != *HOOKS[h].real && !is_hook_of(h, value)) continue;
                if (slots[k]) return; /* twice: not the loader's one pointer; touch nothing */
                slots[k] = slot;
            }
        }
    }
    for (int k = 0; k < N_LOADER_ALLOCATORS; k++)
        if (!slots[k]) return;
    for (int k = 0; k < N_LOADER_ALLOCATORS; k++) patch_slot(ctx, o, slots[k], hooks[k], 0);
}

static object object_of(const struct dl_phdr_info *info) {
    object o = {info, 0, 0, 0};
    long page = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && g_unwinder_fn >= lo && g_unwinder_fn < lo + ph->p_memsz)
            o.unwinder = 1;
        if (ph->p_type != PT_GNU_RELRO) continue;
        /* As the loader protects it: whole pages, the last partial page stays writable. */
        o.relro_lo = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)(page - 1);
        o.relro_hi = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz) & ~(uintptr_t)(page - 1);
    }
    return o;
}

static int is_loader(const char *name) {
    return strstr(name, "ld-linux") || strstr(name, "/ld-") || strstr(name, "/ld.so");
}

static int patch_one(struct dl_phdr_info *info, patch_ctx *ctx) {
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (info->dlpi_addr == g_self_base && g_self_base != 0) return 0;
    if (strstr(name, "linux-vdso") || strstr(name, "linux-gate")) return 0;
    object o = object_of(info);
    if (is_loader(name)) {
        patch_loader(info, &o, ctx);
        return 0;
    }
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC) dyn = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
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
    if (jmprel) patch_relocs(jmprel, jmprel_size / sizeof(ElfW(Rela)), symtab, strtab, &o, ctx);
    if (rela) patch_relocs(rela, rela_size / sizeof(ElfW(Rela)), symtab, strtab, &o, ctx);
    return 0;
}

/* install=1, only_new=0: every object (and g_seen starts again); install=0: every slot
 * back to the real function. */
static int patch_all(int install, int only_new) {
    patch_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.install = install;
    pthread_mutex_lock(&g_hooks_lock);
    ctx.only_new = only_new && g_seen_valid;
    if (install && !ctx.only_new) g_n_seen = 0;
    g_seen_valid = install;
    dl_iterate_phdr(patch_object, &ctx);
    pthread_mutex_unlock(&g_hooks_lock);
    free(ctx.ranges);
    return ctx.patched;
}

int mt_hooks_install(void) { return patch_all(1, 0); }

int mt_hooks_install_new(void) { return patch_all(1, 1); }

void mt_hooks_uninstall(void) {
    int saved = mt_guard;
    mt_guard = 1;
    patch_all(0, 0);
    mt_guard = saved;
}

/* ---- Python allocator domains ------------------------------------------------------- */

/* Our allocators keep each domain's own ctx and find the wrapped functions in globals: a
 * thread reading the domain while PyMem_SetAllocator copies it may pair old functions with
 * the new ctx or the reverse, and both are then right. RAW is called without the GIL, from
 * any thread; the hooks never need it. */
static PyMemAllocatorEx g_orig_raw, g_orig_mem, g_orig_obj;
static int g_pymem_installed;

#define DOMAIN_HOOKS(dom, orig, K_MALLOC, K_CALLOC, K_REALLOC, K_FREE)                    \
    static void *dom##_malloc(void *ctx, size_t n) {                                    \
        if (TRACE_OK) return orig.malloc(ctx, n);                                       \
        void *p;                                                                        \
        GUARDED(p = orig.malloc(ctx, n));                                               \
        if (p && TAKEN(n)) mt_record_alloc(p, n, K_MALLOC, CALLER);                     \
        return p;                                                                       \
    }                                                                                   \
    static void *dom##_calloc(void *ctx, size_t n, size_t size) {                       \
        if (TRACE_OK) return orig.calloc(ctx, n, size);                                 \
        void *p;                                                                        \
        GUARDED(p = orig.calloc(ctx, n, size));                                         \
        if (p && TAKEN(n * size)) mt_record_alloc(p, n * size, K_CALLOC, CALLER);       \
        return p;                                                                       \
    }                                                                                   \
    static void *dom##_realloc(void *ctx, void *old, size_t n) {                        \
        if (TRACE_OK) return orig.realloc(ctx, old, n);                                 \
        if (old && !UNSAMPLED(old)) mt_record_free(old, 0, K_REALLOC);                 \
        void *p;                                                                        \
        GUARDED(p = orig.realloc(ctx, old, n));                                         \
        if (p && TAKEN(n)) mt_record_alloc(p, n, K_REALLOC, CALLER);                    \
        return p;                                                                       \
    }                                                                                   \
    static void dom##_free(void *ctx, void *p) {                                        \
        if (TRACE_OK || !p) {                                                           \
            orig.free(ctx, p);                                                          \
            return;                                                                     \
        }                                                                               \
        if (!UNSAMPLED(p)) mt_record_free(p, 0, K_FREE);                                \
        GUARDED(orig.free(ctx, p));                                                     \
    }

DOMAIN_HOOKS(raw, g_orig_raw, MT_PYMEM_RAW_MALLOC, MT_PYMEM_RAW_CALLOC, MT_PYMEM_RAW_REALLOC,
             MT_PYMEM_RAW_FREE)
DOMAIN_HOOKS(mem, g_orig_mem, MT_PYMALLOC_MALLOC, MT_PYMALLOC_CALLOC, MT_PYMALLOC_REALLOC,
             MT_PYMALLOC_FREE)
DOMAIN_HOOKS(obj, g_orig_obj, MT_PYMALLOC_MALLOC, MT_PYMALLOC_CALLOC, MT_PYMALLOC_REALLOC,
             MT_PYMALLOC_FREE)

void mt_pymem_install(void) {
    if (g_pymem_installed) return;
    PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &g_orig_raw);
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &g_orig_mem);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &g_orig_obj);
    PyMemAllocatorEx raw = {g_orig_raw.ctx, raw_malloc, raw_calloc, raw_realloc, raw_free};
    PyMemAllocatorEx mem = {g_orig_mem.ctx, mem_malloc, mem_calloc, mem_realloc, mem_free};
    PyMemAllocatorEx obj = {g_orig_obj.ctx, obj_malloc, obj_calloc, obj_realloc, obj_free};
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &raw);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj);
    g_pymem_installed = 1;
}

void mt_pymem_uninstall(void) {
    if (!g_pymem_installed) return;
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &g_orig_raw);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &g_orig_mem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &g_orig_obj);
    g_pymem_installed = 0;
}
