/* The recorder (see recorder.h): interning, encoding, buffering and the writer thread. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "callas.h"
#include "hooks.h"
#include "unwinder.h"
#include "mpack.h"
#include "pystack.h"
#include "recorder.h"
#include "sampler.h"
#include "table.h"
#include "writer.h" /* the capture file writer: memtrace_core/capture/writer.h */

#define MT_BUF_CAP (1u << 20)
/* Per-thread stack arrays start small and grow with the deepest stack seen: they stay in a
 * process after a detach, until their thread ends (a pool of idle threads kept ~18 KiB
 * each when they started at 256 and 128 frames; now ~1.7 KiB, and the native ones only
 * with --native). */
#define MT_NATIVE_INITIAL 64        /* native arrays grow from here to the limit */
/* A thread's first unwindings go step by step (unw_step), its later ones through
 * unw_backtrace. unw_backtrace gives every thread that calls it a cache of its own, which
 * libunwind 1.6 makes at the first call and fills whole: 16,384 entries, 256 KiB touched,
 * kept until the thread ends. A service's pool threads that allocate now and then (or are
 * sampled now and then) each paid that: 200 such threads under `--native --sample` took
 * 54 MiB more memory than without --native. A step costs more (two signal-mask system
 * calls in Debian's libunwind), so a thread that keeps unwinding moves on to the cache. */
#define MT_FAST_UNWIND_AFTER 32
#define MT_FILL_PAYBACK 32          /* matches a kept unwinding must earn (capture_native) */
#define MT_FILL_RETRY_MIN 255u      /* misses before fills are tried again: at first ... */
#define MT_FILL_RETRY_MAX 65535u    /* ... and after many fruitless rounds */
#define MT_PY_INITIAL 32            /* Python arrays grow from here ... */
#define MT_PY_DEPTH_LIMIT 65536     /* ... to this: every frame of any practical recursion */
#define MT_OWN_FRAMES 16            /* room for the tracer's own frames in an unwinding */
#define MT_CUT_COUNT_MAX 0x7FFFFFFFu /* frames beyond the limit are counted up to this */
#define MT_TICK_BUSY_NS 10000000ULL   /* a TICK every 10 ms while records flow */
#define MT_TICK_IDLE_NS 100000000ULL  /* and every 100 ms when idle */
/* Sampling: a TICK every 250 ms while records flow (and, writing inline, a hand-over to the
 * capture writer, which closes a zstd block). Sampled records are few: a program allocating
 * 10 MB/s sends ~20 samples a second, so a TICK at every sample's 50 ms was as many bytes as
 * the samples, and each block's headers more (numpy's benchmark under load: 162 ticks and
 * 83 blocks, a fifth of its capture). The figures of a sampled capture are estimates, and
 * their times need no finer grain. */
#define MT_TICK_SAMPLED_BUSY_NS 250000000ULL
#define MT_MAX_NAMED 1024

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

volatile int mt_tracking MT_INTERNAL = 0;
__thread int mt_guard __attribute__((tls_model("initial-exec"))) = 0;
static __thread uint32_t t_thread __attribute__((tls_model("initial-exec"))) = 0;
static __thread uint32_t t_thread_gen __attribute__((tls_model("initial-exec"))) = 0;
static __thread int t_name_slot __attribute__((tls_model("initial-exec"))) = -1;
static __thread uint32_t t_name_seq __attribute__((tls_model("initial-exec"))) = 0;
static __thread uint32_t t_renames __attribute__((tls_model("initial-exec"))) = 0;
/* The thread's errno, found once: `errno` is a call into libc at every use. */
static __thread int *t_errno __attribute__((tls_model("initial-exec"))) = NULL;

static inline int *errno_ptr(void) {
    int *e = t_errno;
    if (__builtin_expect(e == NULL, 0)) t_errno = e = &errno;
    return e;
}

/* The recorder's one lock, and the writer's and producers' waits, on futexes: taking and
 * releasing it is one atomic instruction each, inline, on the path of every record (a
 * pthread mutex is two calls and bookkeeping per record). It is held for the few dozen
 * nanoseconds of encoding one record, so a thread that finds it taken spins a little
 * before sleeping (threads allocating at once). */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} mt_buf;

/* The previous ALLOC's and FREE's other fields: an ALLOC or FREE that repeats them is sent
 * as ALLOC_SAME / FREE_SAME, the address (and size) alone (docs/FORMAT.md). */
typedef struct {
    int alloc_valid, free_valid;
    uint32_t alloc_thread, alloc_allocator, alloc_py, alloc_nat;
    uint32_t free_thread, free_allocator;
} mt_rec_ctx;

/* What every record reads or writes, in two cache lines: the program between two of its
 * allocations (writing the memory it got, as C code does) evicts the tracer's state from
 * the L1 cache, and each line a record touches then costs a miss. Scattered across .bss,
 * these took five lines. The hot fields are reached by their old names (macros below). */
static struct {
    int lock;                   /* 0 free, 1 held, 2 held and someone may sleep on it */
    int running, failed, native, inline_;
    volatile int python_gone;
    uint32_t generation;
    uint32_t renames;           /* bumped at every thread rename (see thread_index_locked) */
    mt_buf active;
    uint64_t records_since_tick;
    uint64_t last_addr;         /* ALLOC/FREE carry addresses as deltas from the previous one */
    mt_rec_ctx ctx;             /* the stream's previous ALLOC and FREE */
} g_hot __attribute__((aligned(64)));
#define g_lock g_hot.lock
#define g_running g_hot.running
#define g_failed g_hot.failed
#define g_native g_hot.native
#define g_inline g_hot.inline_
#define g_python_gone g_hot.python_gone
#define g_generation g_hot.generation
#define g_active g_hot.active
#define g_records_since_tick g_hot.records_since_tick
#define g_last_addr g_hot.last_addr
#define g_ctx g_hot.ctx
/* Sampling: the ordinal of the next sampled ALLOC of a heap allocator (lock held). */
static uint64_t g_sample_ordinal;
/* Sampling (format 7): each full ALLOC record's (thread, allocator, pynode, nativenode) by
 * (thread << 32 | allocator, pynode, nativenode), its value the record's number + 1 among
 * the stream's full ALLOC records (g_full_allocs so far): a later ALLOC of that context
 * is an ALLOC_AGAIN naming the number (docs/FORMAT.md, "Sampled captures"). */
static mt_table g_alloc_ctxs;
static uint32_t g_full_allocs;
static unsigned g_wake_seq;   /* bumped to wake the writer */
static unsigned g_space_seq;  /* bumped when the writer hands a buffer back */
static int g_space_waiters;   /* producers sleeping on g_space_seq (lock held to change) */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* A futex call that leaves errno alone (EAGAIN, ETIMEDOUT are expected here, and the
 * program's errno must never change under the tracer). */
static void futex(void *addr, int op, int val, const struct timespec *timeout) {
    int *err = errno_ptr(), saved = *err;
    syscall(SYS_futex, addr, op, val, timeout, NULL, 0);
    *err = saved;
}

static __attribute__((noinline)) void lock_slow(void) {
    for (int i = 0; i < 200; i++) {
        cpu_relax();
        int free_ = 0;
        if (__atomic_load_n(&g_lock, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&g_lock, &free_, 1, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return;
    }
    while (__atomic_exchange_n(&g_lock, 2, __ATOMIC_ACQUIRE) != 0)
        futex(&g_lock, FUTEX_WAIT_PRIVATE, 2, NULL);
}

static inline void lock(void) {
    int free_ = 0;
    if (LIKELY(__atomic_compare_exchange_n(&g_lock, &free_, 1, 0, __ATOMIC_ACQUIRE,
                                           __ATOMIC_RELAXED)))
        return;
    lock_slow();
}

static inline void unlock(void) {
    if (UNLIKELY(__atomic_exchange_n(&g_lock, 0, __ATOMIC_RELEASE) == 2))
        futex(&g_lock, FUTEX_WAKE_PRIVATE, 1, NULL);
}

/* Sleep until *seq moves from `seen` (or timeout_ns passes, 0: no limit), lock released
 * meanwhile and held again on return. */
static void wait_locked(unsigned *seq, unsigned seen, uint64_t timeout_ns) {
    struct timespec ts = {(time_t)(timeout_ns / 1000000000ULL), (long)(timeout_ns % 1000000000ULL)};
    unlock();
    futex(seq, FUTEX_WAIT_PRIVATE, (int)seen, timeout_ns ? &ts : NULL);
    lock();
}

static void wake_writer_locked(void) {
    __atomic_add_fetch(&g_wake_seq, 1, __ATOMIC_RELEASE);
    futex(&g_wake_seq, FUTEX_WAKE_PRIVATE, 1, NULL);
}

static void wake_producers_locked(void) {
    __atomic_add_fetch(&g_space_seq, 1, __ATOMIC_RELEASE);
    if (g_space_waiters) futex(&g_space_seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}
static mt_buf g_spare;
static int g_spare_busy, g_fd = -1, g_stop_requested;
static int g_native_depth = MT_DEFAULT_NATIVE_DEPTH;
static pthread_t g_writer;
static uint64_t g_start_ns, g_last_tick_ns;
static uint64_t g_tick_busy_ns = MT_TICK_BUSY_NS;
/* A sampled capture file has no writer thread: the thread that records writes, when the
 * buffer is full or a flush is due (at a record, every tick period), and at stop.
 *
 * Why: glibc's malloc and free skip their arena locks while a process has one thread, and
 * a writer thread alone made the untraced-looking fast path of a single-threaded program's
 * malloc/free ~4 ns slower (5% of bench_run's malloc/free workload: more than everything
 * else sampled mode costs there). Sampled records are few, so compressing them on the
 * program's thread costs little. What it gives up: a program idle for a while has its last
 * records (up to one tick period's) in the file only at its next sampled allocation or at
 * exit, and no idle TICKs (a TICK is written at stop). Live pipes and exact mode keep the
 * writer thread. */
/* Whether MAPS and MAPS_DELTA are sent. Not in a sampled capture without native stacks: the
 * memory maps are there to name native frames (docs/FORMAT.md), and numpy's import alone
 * sent a tenth of its sampled capture in them, most of a short one's fixed content. */
static int g_send_maps;
/* Lazy maps (a sampled capture with native stacks, format 7): MAPS and MAPS_DELTA hold only
 * the objects that the stream's native nodes lie in, each sent just before the first node
 * that needs it (and taken back when it is unloaded). A sampled capture's few stacks touch
 * a handful of the ~30-200 objects a Python program loads, and the maps of all of them were
 * a quarter of numpy's and pandas' sampled --native captures (4 KB, 8 KB). */
static int g_maps_lazy;
static void maps_need_locked(uintptr_t ip);
/* Whether the native stack table and the last maps snapshot say all the stream does about
 * native frames (mt_recorder_native_summary): every node in the table was sent, and no
 * object ever left the maps (each snapshot holds all the ones before it). */
static int g_summary_ok;
/* Inline writing: the last periodic flush (a TICK's turn), not a full buffer's flush: a
 * sampled stream that filled the buffer more often than the tick period had no TICK. */
static uint64_t g_last_flush_ns;
static uint64_t g_last_flush_coarse_ns; /* the same moment, on the coarse clock */
static int g_statm_fd = -1;
static mt_table g_codes, g_pynodes, g_natnodes;
static uint32_t g_next_code, g_next_pynode, g_next_natnode, g_next_thread;
/* The last node ids sent: the next one is sent as PYNODE_NEXT / NATIVENODE_NEXT. */
static uint32_t g_last_pynode_sent, g_last_natnode_sent;
static uintptr_t g_self_lo, g_self_hi;
static char g_exe[4096];
static char g_strbuf[2][8192];
static int g_atfork_registered;
/* Capture files go through the one capture writer (its format, compression and flush
 * policy: capture/writer.h), on the writer thread; a live pipe gets the plain stream. */
static int g_compress;
static mt_capture g_capture;

/* Thread names by OS thread id. A rename bumps `seq`: the thread's next record declares a
 * new thread index with the new name, so records before and after keep their own names. */
static struct {
    long tid;
    pthread_t pthread; /* known once the thread has allocated */
    uint32_t index;    /* the thread's current index; 0 until it first allocates */
    uint32_t gen;
    uint32_t seq;
    int named;         /* named by the program (else the kernel's name, read at first use) */
    char name[64];
} g_names[MT_MAX_NAMED];
static int g_n_names;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The monotonic clock to the kernel's tick (a few ms), a few times cheaper to read: for
 * "is a flush due" after every sampled record. Never compared with now_ns's times. */
static uint64_t coarse_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- buffer ------------------------------------------------------------------------- */

/* Room for n bytes in the active buffer (lock held); NULL once tracing ended. Hands a full
 * buffer to the writer and waits while the writer still holds the other one: records are
 * never dropped while the reader keeps up, and back-pressure reaches the program instead. */
static void flush_inline_locked(int end);
static inline void maybe_flush_inline_locked(void);

/* A buffer of its own mapping: unmapped at stop, its memory goes back to the system at
 * once (a freed malloc block of 1 MiB may stay in the heap). */
static mt_buf buf_make(size_t cap) {
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? (mt_buf){NULL, 0, 0} : (mt_buf){p, 0, cap};
}

static void buf_drop(mt_buf *b) {
    if (b->data) munmap(b->data, b->cap);
    *b = (mt_buf){NULL, 0, 0};
}

static uint8_t *reserve_slow(size_t n) {
    for (;;) {
        if (!g_running || g_failed) return NULL;
        if (g_active.len + n <= g_active.cap) return g_active.data + g_active.len;
        if (g_inline && g_active.len) {
            flush_inline_locked(0);
            continue;
        }
        if (g_active.len == 0) { /* one record larger than the buffer (a MAPS) */
            mt_buf bigger = buf_make(n);
            if (!bigger.data) return NULL;
            buf_drop(&g_active);
            g_active = bigger;
            return g_active.data;
        }
        if (!g_spare_busy) {
            mt_buf t = g_active;
            g_active = g_spare;
            g_spare = t;
            g_spare_busy = 1;
            wake_writer_locked();
            continue;
        }
        g_space_waiters++;
        wait_locked(&g_space_seq, g_space_seq, 0);
        g_space_waiters--;
    }
}

/* The common case inline: room in the active buffer of a running recording. */
static inline uint8_t *reserve(size_t n) {
    if (LIKELY(g_active.len + n <= g_active.cap && g_running && !g_failed))
        return g_active.data + g_active.len;
    return reserve_slow(n);
}

static inline void commit(uint8_t *end) {
    g_active.len = (size_t)(end - g_active.data);
    g_records_since_tick++;
}

/* ---- records ------------------------------------------------------------------------ */

static uint32_t intern_code_locked(void *code, void *linetable) {
    int first = mt_code_firstline(code);
    uint32_t id = mt_table_get(&g_codes, (uintptr_t)code, (uintptr_t)linetable, (uint32_t)first);
    if (id) return id;
    id = ++g_next_code;
    if (mt_table_put(&g_codes, (uintptr_t)code, (uintptr_t)linetable, (uint32_t)first, id) < 0)
        return 0;
    size_t nlen = mt_code_qualname(code, g_strbuf[0], sizeof g_strbuf[0]);
    size_t flen = mt_code_filename(code, g_strbuf[1], sizeof g_strbuf[1]);
    uint8_t *p = reserve(32 + nlen + flen);
    if (!p) return id;
    p = mp_array(p, 5);
    p = mp_uint(p, MT_REC_CODE);
    p = mp_uint(p, id);
    p = mp_str(p, g_strbuf[0], (uint32_t)nlen);
    p = mp_str(p, g_strbuf[1], (uint32_t)flen);
    p = mp_int(p, first);
    commit(p);
    return id;
}

/* Each thread remembers its previous stacks, root first, with the trie node of every
 * prefix: consecutive allocations share most of their stack, so only the frames that
 * changed are looked up in the tables. Heap-allocated on first use (TLS stays small, and
 * so does the hook's use of the program's stack: threads may have tiny ones); the native
 * arrays grow with the deepest stack seen, up to the limit. */
typedef struct {
    uint32_t gen;
    int py_depth, nat_depth;
    int py_cap;                             /* entries of each Python array */
    mt_pyframe *py;
    uint32_t *py_nodes;
    mt_pyframe *py_scratch;                 /* the Python stack being captured */
    mt_pykey py_key;                        /* where py's frames lay (mt_python_unchanged) */
    int nat_cap;                            /* entries of each native array */
    uintptr_t *nat;
    uint32_t *nat_nodes;
    uintptr_t *scratch;                     /* the native stack being captured */
    void **raw;                             /* unw_backtrace's output: nat_cap + own frames */
    /* The previous unwinding, innermost first: each frame's ip and its stack pointer (so its
     * return address sits at sp - 8). */
    int unw_depth;
    uintptr_t *unw_ip;
    uintptr_t *unw_sp;
    /* When to pay for a recording unwind (see capture_native). */
    uintptr_t miss_ra, miss_cfa;
    uint32_t hits_since_fill, fruitless_fills, misses, retry_mask;
    /* Inside a loader call (unwind_in_loader): the frames outward of the hook of call
     * number dl_id, innermost first; dl_outer_n -1 when not known. */
    uint64_t dl_id;
    int dl_outer_n, dl_outer_cap;
    uintptr_t *dl_outer;
    /* Unwindings this thread made step by step before it may use unw_backtrace (see
     * unwind_fast); kept across recordings, as libunwind's cache is. */
    uint32_t slow_unwinds;
    /* Its last fast backtrace went into libunwind's masked sections: mask the next one
     * (unwind_fast). */
    int bt_masks;
    /* The stack interned last (nat, nat_nodes) is the kept unwinding (unw_ip): a reuse of
     * it needs no copy and no comparison, its node is known. */
    int nat_is_unw;
    /* Native nodes this thread looked up last, by parent and ip (see natnode_memo). */
    struct natnode_memo *memo;
    uint32_t memo_gen, table_lookups;
    struct mt_ring *ring; /* its records waiting to be encoded (exact mode, see there) */
    /* Ring-less, its records sent under the lock since ringless_ns (see MT_RING_AFTER). */
    uint32_t ringless;
    uint64_t ringless_ns;
} stack_cache;

/* A thread's own small map of the native nodes it looked up, (parent, ip) to node, in
 * front of the shared table. Why: a stack that differs from the thread's previous one near
 * its root (Python code calling a C++ library by another path) looks up every frame below
 * that point, one after another, each lookup's key holding the node found before; in the
 * shared table (8 MiB for a pandas service's 78,000 nodes) each of those is a cache miss
 * (pandas with pyarrow: 8% of the traced run's CPU in the lookups). This map stays in the
 * core's cache. Direct-mapped: a slot keeps the last node that hashed to it. A mapping of
 * its own, listed in g_memos: a stopped recording hands its pages back
 * (memo_release_all_locked), as the rings' (a thread alive after a detach keeps no 64 KiB
 * for it). */
#define MT_MEMO_SLOTS 4096u        /* 64 KiB a thread */
#define MT_MEMO_AFTER 4096u        /* made once the thread looked up this many frames */
typedef struct natnode_memo {
    struct {
        uintptr_t ip;
        uint32_t parent, id;
    } slot[MT_MEMO_SLOTS];
} natnode_memo;

/* Every thread's map (lock held), g_n_memos of them. */
static natnode_memo **g_memos;
static size_t g_n_memos, g_memos_cap;

static inline uint32_t memo_index(uint32_t parent, uintptr_t ip) {
    uint64_t h = ((uint64_t)ip ^ ((uint64_t)parent << 32)) * 0x9E3779B97F4A7C15ULL;
    return (uint32_t)(h >> 40) & (MT_MEMO_SLOTS - 1); /* a product's high bits mix best */
}

static __thread stack_cache *t_cache __attribute__((tls_model("initial-exec"))) = NULL;
static pthread_key_t g_cache_key;
static void ring_retire(stack_cache *c);
static void memo_retire(stack_cache *c);
static pthread_once_t g_cache_once = PTHREAD_ONCE_INIT;

static void free_cache(void *p) {
    /* Runs in the exiting thread: later allocations of that thread start a fresh cache. */
    stack_cache *c = p;
    ring_retire(c);
    t_cache = NULL;
    free(c->nat);
    free(c->nat_nodes);
    free(c->scratch);
    free(c->raw);
    free(c->unw_ip);
    free(c->unw_sp);
    free(c->dl_outer);
    free(c->py);
    free(c->py_nodes);
    free(c->py_scratch);
    memo_retire(c);
    free(c);
}
static void make_cache_key(void) { pthread_key_create(&g_cache_key, free_cache); }

/* Grow the native arrays to hold `want` frames (contents kept); 0 when they hold them. */
static int grow_native(stack_cache *c, int want) {
    if (want <= c->nat_cap) return 0;
    int cap = c->nat_cap ? c->nat_cap : MT_NATIVE_INITIAL;
    while (cap < want) cap *= 2;
    void *p;
#define GROW(field, size)                          \
    if (!(p = realloc(c->field, (size_t)(size)))) return -1; \
    c->field = p;
    GROW(nat, cap * sizeof *c->nat);
    GROW(nat_nodes, cap * sizeof *c->nat_nodes);
    GROW(scratch, cap * sizeof *c->scratch);
    GROW(raw, (cap + MT_OWN_FRAMES) * sizeof *c->raw);
    GROW(unw_ip, cap * sizeof *c->unw_ip);
    GROW(unw_sp, cap * sizeof *c->unw_sp);
#undef GROW
    c->nat_cap = cap;
    return 0;
}

/* Grow the Python arrays to hold `want` frames (contents kept); 0 when they hold them. */
static int grow_python(stack_cache *c, int want) {
    if (want <= c->py_cap) return 0;
    int cap = c->py_cap ? c->py_cap : MT_PY_INITIAL;
    while (cap < want) cap *= 2;
    void *p;
    if (!(p = realloc(c->py, (size_t)cap * sizeof *c->py))) return -1;
    c->py = p;
    if (!(p = realloc(c->py_nodes, (size_t)cap * sizeof *c->py_nodes))) return -1;
    c->py_nodes = p;
    if (!(p = realloc(c->py_scratch, (size_t)cap * sizeof *c->py_scratch))) return -1;
    c->py_scratch = p;
    c->py_cap = cap;
    return 0;
}

/* The thread's Python stack, innermost first, into c->py_scratch: every frame up to
 * MT_PY_DEPTH_LIMIT (the arrays grow with the deepest stack seen). */
static int capture_python(stack_cache *c) {
    for (;;) {
        int depth = mt_capture_python(c->py_scratch, c->py_cap);
        if (depth < c->py_cap || c->py_cap >= MT_PY_DEPTH_LIMIT ||
            grow_python(c, c->py_cap * 2) != 0)
            return depth;
    }
}

static stack_cache *thread_cache(void) {
    stack_cache *c = t_cache;
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL) return NULL;
        c->retry_mask = MT_FILL_RETRY_MIN;
        c->py_key.n = -1;
        if (grow_python(c, MT_PY_INITIAL) != 0) { /* native ones at the first native stack */
            free_cache(c);
            return NULL;
        }
        pthread_once(&g_cache_once, make_cache_key);
        pthread_setspecific(g_cache_key, c);
        t_cache = c;
    }
    if (c->gen != g_generation) {
        c->gen = g_generation;
        c->py_depth = c->nat_depth = c->unw_depth = 0;
        c->py_key.n = -1;
        c->nat_is_unw = 0;
        c->miss_ra = c->miss_cfa = 0;
        c->hits_since_fill = c->fruitless_fills = c->misses = 0;
        c->retry_mask = MT_FILL_RETRY_MIN;
        c->dl_id = 0; /* maps change between recordings: the loader's outer frames too */
        c->ringless = 0;
    }
    return c;
}

static inline int same_pyframe(const mt_pyframe *a, const mt_pyframe *b) {
    return a->code == b->code && a->lasti == b->lasti && a->is_entry == b->is_entry &&
           a->linetable == b->linetable;
}

/* How many frames, from the root, the stack shares with the thread's previous one (its
 * own cache only: no lock). */
static inline int python_common(const stack_cache *c, const mt_pyframe *fr, int depth) {
    int i = 0, common = depth < c->py_depth ? depth : c->py_depth;
    while (i < common && same_pyframe(&fr[depth - 1 - i], &c->py[i])) i++;
    return i;
}

/* The node of the stack whose first `i` frames from the root are the previous stack's
 * (python_common): only the frames after them are looked up in the shared table. */
static uint32_t intern_python_locked(stack_cache *c, const mt_pyframe *fr, int depth, int i) {
    uint32_t node = i ? c->py_nodes[i - 1] : 0;
    c->py_key.n = -1; /* c->py changes */
    for (; i < depth; i++) {
        const mt_pyframe *f = &fr[depth - 1 - i];
        uint64_t a = ((uint64_t)node << 32) | (uint32_t)(f->lasti * 2 + f->is_entry);
        uint32_t id = mt_table_get(&g_pynodes, a, (uintptr_t)f->code, (uintptr_t)f->linetable);
        if (!id) {
            uint32_t code_id = intern_code_locked(f->code, f->linetable);
            id = ++g_next_pynode;
            if (mt_table_put(&g_pynodes, a, (uintptr_t)f->code, (uintptr_t)f->linetable, id) < 0) {
                c->py_depth = 0;
                return node;
            }
            uint8_t *p = reserve(40);
            if (p) {
                if (id == g_last_pynode_sent + 1) { /* the usual case: numbered in order */
                    p = mp_array(p, 5);
                    p = mp_uint(p, MT_REC_PYNODE_NEXT);
                    p = mp_uint(p, id - node);
                } else {
                    p = mp_array(p, 6);
                    p = mp_uint(p, MT_REC_PYNODE);
                    p = mp_uint(p, id);
                    p = mp_uint(p, node);
                }
                g_last_pynode_sent = id;
                p = mp_uint(p, code_id);
                p = mp_int(p, mt_code_line(f->code, f->lasti));
                p = mp_bool(p, f->is_entry);
                commit(p);
            }
        }
        node = id;
        c->py[i] = *f;
        c->py_nodes[i] = id;
    }
    c->py_depth = depth;
    return node;
}

/* ips innermost first (ips[0] may be a cut marker: it then becomes the innermost node, so
 * stacks that differ only in how much was cut share all their frames). */
static inline int native_common(const stack_cache *c, const uintptr_t *ips, int n) {
    int i = 0, common = n < c->nat_depth ? n : c->nat_depth;
    while (i < common && ips[n - 1 - i] == c->nat[i]) i++;
    return i;
}

/* The thread's map (lock held), valid for this recording; NULL until it looks up often. */
static natnode_memo *thread_memo(stack_cache *c) {
    if (LIKELY(c->memo != NULL)) {
        if (UNLIKELY(c->memo_gen != g_generation)) { /* node numbers start again */
            memset(c->memo, 0, sizeof *c->memo);
            c->memo_gen = g_generation;
        }
        return c->memo;
    }
    if (c->table_lookups < MT_MEMO_AFTER) return NULL;
    c->table_lookups = 0; /* out of memory below: try again after as many lookups */
    if (g_n_memos == g_memos_cap) {
        size_t cap = g_memos_cap ? g_memos_cap * 2 : 16;
        natnode_memo **bigger = realloc(g_memos, cap * sizeof *bigger);
        if (bigger == NULL) return NULL;
        g_memos = bigger;
        g_memos_cap = cap;
    }
    void *memo = mmap(NULL, sizeof(natnode_memo), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* zeroed: every slot empty */
    if (memo == MAP_FAILED) return NULL;
    g_memos[g_n_memos++] = memo;
    c->memo = memo;
    c->memo_gen = g_generation;
    return memo;
}

/* A stopped recording's maps (lock held): their pages go back to the system and read as
 * zeros, empty slots, until their threads record again. */
static void memo_release_all_locked(void) {
    for (size_t i = 0; i < g_n_memos; i++)
        madvise(g_memos[i], sizeof(natnode_memo), MADV_DONTNEED);
}

/* A thread ends (its stack cache's destructor): its map goes. */
static void memo_retire(stack_cache *c) {
    natnode_memo *memo = c->memo;
    if (memo == NULL) return;
    c->memo = NULL;
    lock();
    for (size_t i = 0; i < g_n_memos; i++) {
        if (g_memos[i] == memo) {
            g_memos[i] = g_memos[--g_n_memos];
            break;
        }
    }
    unlock();
    munmap(memo, sizeof *memo);
}

static uint32_t intern_native_locked(stack_cache *c, const uintptr_t *ips, int n, int i) {
    uint32_t node = i ? c->nat_nodes[i - 1] : 0;
    natnode_memo *memo = thread_memo(c);
    for (; i < n; i++) {
        uintptr_t ip = ips[n - 1 - i];
        uint32_t id = 0, at = 0;
        if (memo != NULL) {
            at = memo_index(node, ip);
            if (memo->slot[at].ip == ip && memo->slot[at].parent == node) id = memo->slot[at].id;
        }
        if (!id) {
            c->table_lookups++;
            id = mt_table_get(&g_natnodes, node, ip, 0);
        }
        if (!id) {
            id = ++g_next_natnode;
            if (mt_table_put(&g_natnodes, node, ip, 0, id) < 0) {
                c->nat_depth = 0;
                return node;
            }
            if (UNLIKELY(g_maps_lazy) && ip < MT_CUT_MARKER_BASE) maps_need_locked(ip);
            uint8_t *p = reserve(32);
            if (p) {
                if (id == g_last_natnode_sent + 1) {
                    p = mp_array(p, 3);
                    p = mp_uint(p, MT_REC_NATIVENODE_NEXT);
                    p = mp_uint(p, id - node);
                } else {
                    p = mp_array(p, 4);
                    p = mp_uint(p, MT_REC_NATIVENODE);
                    p = mp_uint(p, id);
                    p = mp_uint(p, node);
                }
                g_last_natnode_sent = id;
                p = mp_uint(p, ip);
                commit(p);
            } else {
                g_summary_ok = 0;
            }
        }
        if (memo != NULL) {
            memo->slot[at].ip = ip;
            memo->slot[at].parent = node;
            memo->slot[at].id = id;
        }
        node = id;
        c->nat[i] = ip;
        c->nat_nodes[i] = id;
    }
    c->nat_depth = n;
    return node;
}

static void emit_thread_locked(uint32_t index, long tid, const char *name) {
    size_t len = strnlen(name, 63);
    uint8_t *p = reserve(32 + len);
    if (!p) return;
    p = mp_array(p, 4);
    p = mp_uint(p, MT_REC_THREAD);
    p = mp_uint(p, index);
    p = mp_uint(p, (uint64_t)tid);
    p = mp_str(p, name, (uint32_t)len);
    commit(p);
}

static int find_name(long tid) {
    for (int i = 0; i < g_n_names; i++)
        if (g_names[i].tid == tid) return i;
    return -1;
}

static uint32_t thread_index_slow_locked(void);

/* The common case reads no g_names entry (another cache line): while no thread was renamed
 * since this one last looked (g_hot.renames), its own name cannot have changed. */
static inline uint32_t thread_index_locked(void) {
    if (LIKELY(t_thread && t_thread_gen == g_generation && t_renames == g_hot.renames))
        return t_thread;
    return thread_index_slow_locked();
}

static uint32_t thread_index_slow_locked(void) {
    t_renames = g_hot.renames;
    if (t_thread && t_thread_gen == g_generation &&
        (t_name_slot < 0 || g_names[t_name_slot].seq == t_name_seq))
        return t_thread; /* another thread was renamed */
    if (t_thread && t_thread_gen == g_generation) {
        /* Renamed since its last record: the next records carry the new name. */
        t_thread = ++g_next_thread;
        t_name_seq = g_names[t_name_slot].seq;
        g_names[t_name_slot].index = t_thread;
        emit_thread_locked(t_thread, g_names[t_name_slot].tid, g_names[t_name_slot].name);
        return t_thread;
    }
    t_thread = ++g_next_thread;
    t_thread_gen = g_generation;
    long tid = syscall(SYS_gettid);
    int slot = find_name(tid);
    if (slot < 0 || (g_names[slot].index && g_names[slot].gen == g_generation)) {
        /* Unknown, or a recycled OS id: take the kernel's name for this thread. */
        if (slot < 0 && g_n_names < MT_MAX_NAMED) slot = g_n_names++;
        char name[64] = {0};
        prctl(PR_GET_NAME, name, 0, 0, 0);
        if (slot < 0) {
            t_name_slot = -1;
            emit_thread_locked(t_thread, tid, name);
            return t_thread;
        }
        g_names[slot].tid = tid;
        g_names[slot].named = 0;
        memcpy(g_names[slot].name, name, sizeof name);
    }
    g_names[slot].pthread = pthread_self();
    g_names[slot].index = t_thread;
    g_names[slot].gen = g_generation;
    t_name_slot = slot;
    t_name_seq = g_names[slot].seq;
    emit_thread_locked(t_thread, tid, g_names[slot].name);
    return t_thread;
}

/* Give the thread in `slot` a name (lock held). The first name the program gives a thread
 * that so far had only the kernel's replaces it in place (its THREAD record is sent again);
 * a later, different name is a rename (see g_names). */
static void name_slot_locked(int slot, const char *name, int rename) {
    int live = g_running && g_names[slot].index && g_names[slot].gen == g_generation;
    if (live && strncmp(g_names[slot].name, name, 63) == 0) {
        g_names[slot].named = 1;
        return;
    }
    strncpy(g_names[slot].name, name, 63);
    g_names[slot].name[63] = 0;
    if (!live) {
        g_names[slot].named = 1;
    } else if (rename || g_names[slot].named) {
        g_names[slot].seq++;
        g_hot.renames++;
    } else {
        g_names[slot].named = 1;
        emit_thread_locked(g_names[slot].index, g_names[slot].tid, g_names[slot].name);
    }
}

void mt_set_thread_name(long os_tid, const char *name, int rename) {
    int saved = mt_guard;
    mt_guard = 1;
    lock();
    int slot = find_name(os_tid);
    if (slot < 0 && g_n_names < MT_MAX_NAMED) {
        slot = g_n_names++;
        memset(&g_names[slot], 0, sizeof g_names[slot]);
        g_names[slot].tid = os_tid;
    }
    if (slot >= 0) name_slot_locked(slot, name, rename);
    unlock();
    mt_guard = saved;
}

void mt_thread_renamed(pthread_t thread, const char *name) {
    int saved = mt_guard;
    mt_guard = 1;
    int self = pthread_equal(thread, pthread_self());
    long tid = self ? syscall(SYS_gettid) : 0;
    lock();
    int slot = -1;
    /* Another thread's pthread_t may be that of a thread gone since (glibc reuses them): the
     * live one is the latest to have allocated, the one with the highest thread index. */
    for (int i = 0; i < g_n_names && !(self && slot >= 0); i++) {
        if (self ? g_names[i].tid == tid
                 : (g_names[i].index && g_names[i].gen == g_generation &&
                    pthread_equal(g_names[i].pthread, thread) &&
                    (slot < 0 || g_names[i].index > g_names[slot].index)))
            slot = i;
    }
    /* A thread not seen yet reads its (new) kernel name at its first record. */
    if (slot >= 0) name_slot_locked(slot, name, 1);
    unlock();
    mt_guard = saved;
}

/* first_of_burst: 0 periodic, 1 the first record after a quiet spell, MT_TICK_AT_END the
 * time of the end (sent however soon after the previous TICK: a sampled run shorter than a
 * tick period had no TICK at all). */
#define MT_TICK_AT_END 2
static void maybe_tick_locked(uint64_t now, int first_of_burst);

/* Child processes the program started that are not traced (-1: unknown, as when attached):
 * the TRAILER's fourth field when known, and the TICKs' fourth once there is one. */
static volatile long g_untraced_children = -1;

/* ---- native stacks ------------------------------------------------------------------ */

/* The native stack, innermost first, without the tracer's own frames, into c->scratch.
 *
 * Consecutive allocations from one call site share their whole native stack, and unwinding
 * it (libunwind, ~16 ns a frame) was the main cost of --native. So a thread may keep an
 * unwinding with every frame's stack pointer: when the hook's caller is the same (return
 * address and stack pointer at the call, given by the hook) and every saved return address
 * of that stack is still in its slot on the stack, the stack is the same and is reused.
 * Recording the stack pointers needs libunwind's step-by-step walk, ~3x slower than its
 * fast backtrace, so it is only done when the same caller comes twice in a row and recent
 * recordings were reused; everything else takes the fast backtrace.
 *
 * A stack deeper than the limit keeps its innermost frames (where the memory is allocated)
 * and gets a cut marker saying how many outer frames were left out (unwind_steps). */

static inline int is_own(uintptr_t ip) { return ip >= g_self_lo && ip < g_self_hi; }

/* Step by step: records each frame's stack pointer too, counts the frames beyond the limit,
 * and inside a loader call (callas.h) resumes from the hook's frame where the borrowed
 * return address would mislead the unwinder. Returns the frames in c->scratch (a cut
 * marker first when frames were cut), with their stack pointers in c->unw_sp; *cut = 1
 * when the stack was cut. *resumed: how many frames came before the first such resume (-1:
 * none); with `inner_only`, the unwinding stops there. */
static int unwind_steps_from_masked(stack_cache *c, int *cut, int *resumed, int inner_only);
static int unwind_steps_from(stack_cache *c, int *cut, int *resumed, int inner_only) {
    /* each step takes libunwind's locks and checks addresses: masked once (unwinder.h) */
    int masked = mt_unwind_mask_begin();
    int n = unwind_steps_from_masked(c, cut, resumed, inner_only);
    mt_unwind_mask_end(masked);
    return n;
}

static int unwind_steps_from_masked(stack_cache *c, int *cut, int *resumed, int inner_only) {
    unw_context_t uc;
    unw_cursor_t cursor;
    *cut = 0;
    *resumed = -1;
    if (unw_getcontext(&uc) != 0 || unw_init_local(&cursor, &uc) != 0) return 0;
    const mt_dlcall *call = mt_t_dlcall;
    int n = 0, own = 1;
    uint32_t beyond = 0;
    for (;;) {
        unw_word_t ip = 0, sp = 0;
        unw_get_reg(&cursor, UNW_REG_IP, &ip);
        if (ip == 0) break;
        if (call && ip == call->gadget) {
            if (*resumed < 0) *resumed = n;
            if (inner_only) return beyond ? -1 : n;
            if (unw_init_local(&cursor, (unw_context_t *)&call->context) != 0) break;
            call = call->prev;
            own = 1; /* the hook's own frame comes first: skipped like ours */
            continue;
        }
        if (!(own && is_own(ip))) {
            own = 0;
            if (n < g_native_depth && (n < c->nat_cap || grow_native(c, n + 1) == 0)) {
                unw_get_reg(&cursor, UNW_REG_SP, &sp);
                c->scratch[n] = (uintptr_t)ip;
                c->unw_sp[n] = (uintptr_t)sp;
                n++;
            } else if (++beyond >= MT_CUT_COUNT_MAX) {
                break;
            }
        }
        if (unw_step(&cursor) <= 0) break;
    }
    if (inner_only) return -1; /* no borrowed address met: not the call it was asked for */
    if (beyond && (n < c->nat_cap || grow_native(c, n + 1) == 0)) {
        memmove(c->scratch + 1, c->scratch, (size_t)n * sizeof *c->scratch);
        c->scratch[0] = (uintptr_t)(MT_CUT_MARKER_BASE + beyond);
        n++;
        *cut = 1;
    }
    return n;
}

static int unwind_steps(stack_cache *c, int *cut) {
    int resumed;
    return unwind_steps_from(c, cut, &resumed, 0);
}

/* Inside a loader call. A library's constructors can allocate thousands of times in one
 * dlopen (protobuf's descriptor tables, when scikit-learn's imports load them: 9,421
 * unwindings), each step by step, and a step costs ~1 us on a deep stack (libunwind's
 * per-thread cache of 128 frames thrashes): 1.5 s of a 13 s run. The frames outward of the
 * hook stay the same for the whole call, so the first unwinding inside it keeps them, and
 * the next ones step only through the loader's frames, down to the borrowed address. */
static int unwind_in_loader(stack_cache *c, int *cut) {
    const mt_dlcall *call = mt_t_dlcall;
    int resumed;
    if (c->dl_id == call->id && c->dl_outer_n >= 0) {
        int n = unwind_steps_from(c, cut, &resumed, 1);
        if (n >= 0 && n + c->dl_outer_n <= g_native_depth &&
            grow_native(c, n + c->dl_outer_n) == 0) {
            memcpy(c->scratch + n, c->dl_outer, (size_t)c->dl_outer_n * sizeof *c->scratch);
            return n + c->dl_outer_n;
        }
    }
    int n = unwind_steps_from(c, cut, &resumed, 0);
    c->dl_id = call->id;
    c->dl_outer_n = -1;
    if (*cut || resumed < 0) return n; /* a cut stack's outer frames are not all known */
    int outer = n - resumed;
    if (outer > c->dl_outer_cap) {
        uintptr_t *p = realloc(c->dl_outer, (size_t)outer * sizeof *p);
        if (p == NULL) return n;
        c->dl_outer = p;
        c->dl_outer_cap = outer;
    }
    memcpy(c->dl_outer, c->scratch + resumed, (size_t)outer * sizeof *c->dl_outer);
    c->dl_outer_n = outer;
    return n;
}

/* libunwind's fast backtrace; a stack that fills the buffer grows it, up to the limit, and
 * a deeper one goes step by step to count what is cut. */
static int unwind_fast(stack_cache *c) {
    if (UNLIKELY(c->slow_unwinds < MT_FAST_UNWIND_AFTER)) {
        c->slow_unwinds++;
        int cut;
        return unwind_steps(c, &cut);
    }
    for (;;) {
        int size = c->nat_cap + MT_OWN_FRAMES;
        /* Most backtraces find every frame in libunwind's cache and make no system call;
         * the few that do not (new code, or a frame the fast path cannot follow, when it
         * steps the whole stack) make ~25, and come in runs (pandas' import: 8,500 of
         * 104,000, each followed by another 65% of the time). So a thread whose last
         * backtrace went into libunwind's locked sections masks the next (unwinder.h). */
        long calls = mt_unwind_mask_calls;
        int masked = c->bt_masks ? mt_unwind_mask_begin() : 0;
        int n = unw_backtrace(c->raw, size);
        mt_unwind_mask_end(masked);
        c->bt_masks = mt_unwind_mask_calls != calls;
        if (n < size) {
            int i = 0;
            while (i < n && is_own((uintptr_t)c->raw[i])) i++;
            /* Fewer own frames than the room kept for them leave more than nat_cap of the
             * program's: scratch holds nat_cap (it overflowed into the next heap block). */
            if (n - i > c->nat_cap && n - i <= g_native_depth && grow_native(c, n - i) != 0)
                return 0;
            int k = 0, room = c->nat_cap < g_native_depth ? c->nat_cap : g_native_depth;
            for (; i < n && k < room; i++) c->scratch[k++] = (uintptr_t)c->raw[i];
            if (i == n) return k;
        } else if (c->nat_cap < g_native_depth && grow_native(c, c->nat_cap * 2) == 0) {
            continue;
        }
        int cut;
        return unwind_steps(c, &cut);
    }
}

/* Whether the stack is still the kept unwinding: the hook's caller and its stack pointer,
 * and every saved return address, unchanged. Four slots a branch: a ctypes call's stack
 * has ~30 return addresses, and this loop, one branch a slot, held half of the samples of
 * an ALLOC's record under --native (11 M malloc/free --native 1.79x -> 1.75x, 1.82x ->
 * 1.74x in two runs of interleaved rounds; unrolled by 8, no better). */
static inline int kept_unwinding_holds(const stack_cache *c, uintptr_t ra, uintptr_t cfa) {
    int n = c->unw_depth;
    if (n == 0 || c->unw_ip[0] != ra || c->unw_sp[0] != cfa) return 0;
    const uintptr_t *ip = c->unw_ip, *sp = c->unw_sp;
#define MT_SLOT_DIFF(m) (*(const uintptr_t *)(sp[m] - sizeof(void *)) ^ ip[m])
    int m = 1;
    for (; m + 4 <= n; m += 4)
        if (MT_SLOT_DIFF(m) | MT_SLOT_DIFF(m + 1) | MT_SLOT_DIFF(m + 2) | MT_SLOT_DIFF(m + 3))
            return 0;
    for (; m < n; m++)
        if (MT_SLOT_DIFF(m)) return 0;
#undef MT_SLOT_DIFF
    return 1;
}

/* *from_unw = 1 when the stack is the kept unwinding (c->unw_ip); it is then in c->scratch
 * too, unless it is also the stack interned last (c->nat_is_unw): nothing to copy. */
static int capture_native(stack_cache *c, uintptr_t ra, uintptr_t cfa, int *from_unw) {
    int cut;
    *from_unw = 0;
    if (UNLIKELY(c->nat_cap == 0) && grow_native(c, MT_NATIVE_INITIAL) != 0) return 0;
    if (UNLIKELY(mt_t_dlcall != NULL)) return unwind_in_loader(c, &cut); /* in dlopen... */
    if (kept_unwinding_holds(c, ra, cfa)) {
        int n = c->unw_depth;
        c->hits_since_fill++;
        *from_unw = 1;
        if (!c->nat_is_unw) memcpy(c->scratch, c->unw_ip, (size_t)n * sizeof *c->scratch);
        return n;
    }
    c->nat_is_unw = 0; /* the kept unwinding is replaced or dropped below */
    int again = ra == c->miss_ra && cfa == c->miss_cfa;
    c->miss_ra = ra;
    c->miss_cfa = cfa;
    if ((++c->misses & c->retry_mask) == 0) c->fruitless_fills = 0; /* now and then */
    if (!again || c->fruitless_fills >= 2) return unwind_fast(c);
    /* A fill steps through the stack: on scikit-learn's ~150-frame stacks 160 us, 35 times
     * unw_backtrace, and its fills matched 7 times each (14,833 fills took 2.4 s of a 13 s
     * run to save 0.5 s). So a fill whose stack was matched fewer than MT_FILL_PAYBACK
     * times was fruitless, and after two in a row the wait before trying again doubles. */
    if (c->hits_since_fill >= MT_FILL_PAYBACK) {
        c->fruitless_fills = 0;
        c->retry_mask = MT_FILL_RETRY_MIN;
    } else if (++c->fruitless_fills == 2 && c->retry_mask < MT_FILL_RETRY_MAX) {
        c->retry_mask = c->retry_mask * 2 + 1;
    }
    c->hits_since_fill = 0;
    int n = unwind_steps(c, &cut);
    /* Only a whole stack whose innermost frame is the hook's caller can be matched later. */
    if (n > 0 && !cut && c->scratch[0] == ra && c->unw_sp[0] == cfa) {
        memcpy(c->unw_ip, c->scratch, (size_t)n * sizeof *c->scratch);
        c->unw_depth = n;
        *from_unw = 1;
    } else {
        c->unw_depth = 0;
    }
    return n;
}

/* The record bodies, against the context `c` they read and update: the stream's (g_ctx),
 * or a drain's copy of it held in registers (encode_merged_locked). */

/* Whether an ALLOC repeats the previous one's context (then sent as ALLOC_SAME). */
static inline int same_alloc_ctx(const mt_rec_ctx *c, uint32_t thread, int allocator,
                                 uint32_t py, uint32_t nat) {
    return c->alloc_valid && thread == c->alloc_thread && py == c->alloc_py &&
           nat == c->alloc_nat && (uint32_t)allocator == c->alloc_allocator;
}

static inline uint8_t *put_alloc_same(uint8_t *p, int64_t delta, size_t size) {
    p = mp_array(p, 3);
    p = mp_uint(p, MT_REC_ALLOC_SAME);
    p = mp_int_fast(p, delta);
    return mp_uint_fast(p, size);
}

/* A full ALLOC record; its context becomes the one ALLOC_SAME repeats. */
static inline uint8_t *put_full_alloc(uint8_t *p, mt_rec_ctx *c, int64_t delta, size_t size,
                                      int allocator, uint32_t thread, uint32_t py,
                                      uint32_t nat) {
    p = mp_array(p, 7);
    p = mp_uint(p, MT_REC_ALLOC);
    p = mp_uint(p, thread);
    p = mp_uint(p, (uint64_t)allocator);
    p = mp_int_fast(p, delta);
    p = mp_uint_fast(p, size);
    p = mp_uint(p, py);
    p = mp_uint(p, nat);
    c->alloc_valid = 1;
    c->alloc_thread = thread;
    c->alloc_allocator = (uint32_t)allocator;
    c->alloc_py = py;
    c->alloc_nat = nat;
    return p;
}

/* An exact ALLOC: ALLOC_SAME when it repeats the previous one's context, else in full. */
static inline uint8_t *put_alloc(uint8_t *p, mt_rec_ctx *c, int64_t delta, size_t size,
                                 int allocator, uint32_t thread, uint32_t py, uint32_t nat) {
    if (same_alloc_ctx(c, thread, allocator, py, nat)) return put_alloc_same(p, delta, size);
    return put_full_alloc(p, c, delta, size, allocator, thread, py, nat);
}

/* Whether a FREE repeats the previous one's context (then sent as FREE_SAME). */
static inline int same_free_ctx(const mt_rec_ctx *c, size_t size, uint32_t thread,
                                int allocator) {
    return size == 0 && c->free_valid && thread == c->free_thread &&
           (uint32_t)allocator == c->free_allocator;
}

static inline uint8_t *put_free_same(uint8_t *p, int64_t delta) {
    p = mp_array(p, 2);
    p = mp_uint(p, MT_REC_FREE_SAME);
    return mp_int_fast(p, delta);
}

/* A full FREE record; its context becomes the one FREE_SAME repeats. */
static inline uint8_t *put_full_free(uint8_t *p, mt_rec_ctx *c, int64_t delta, size_t size,
                                     int allocator, uint32_t thread) {
    p = mp_array(p, 5);
    p = mp_uint(p, MT_REC_FREE);
    p = mp_uint(p, thread);
    p = mp_uint(p, (uint64_t)allocator);
    p = mp_int_fast(p, delta);
    p = mp_uint_fast(p, size);
    c->free_valid = 1;
    c->free_thread = thread;
    c->free_allocator = (uint32_t)allocator;
    return p;
}

/* A FREE: FREE_SAME when it repeats the previous one's thread and allocator and has no
 * size, else in full. */
static inline uint8_t *put_free(uint8_t *p, mt_rec_ctx *c, int64_t delta, size_t size,
                                int allocator, uint32_t thread) {
    if (same_free_ctx(c, size, thread, allocator)) return put_free_same(p, delta);
    return put_full_free(p, c, delta, size, allocator, thread);
}

/* ---- EVENTS: a drain's ALLOC_SAMEs and FREE_SAMEs packed in bins (format 9) -----------
 *
 * Why: an 11 M malloc/free run wrote 15.5 bytes a pair as msgpack records (an array header,
 * a type and a 5-byte delta for most FREE_SAMEs, 9-10 bytes an ALLOC_SAME), where the
 * items of an EVENTS bin (wire/format.h) take 3 and 5: half the stream to encode, copy and
 * write. A drain opens a bin at its first record in the context of the one before, and
 * closes it at a record that is not, when it is nearly full, and at the end of its batch. */

/* A number of an EVENTS item; writes 9 bytes past p whatever its length (the caller's room
 * must allow it). */
static inline uint8_t *ev_number(uint8_t *p, uint64_t v) {
    unsigned bits = 64u - (unsigned)__builtin_clzll(v | 1);
    if (LIKELY(bits <= 56)) {
        unsigned len = (bits + 6) / 7; /* 1 to 8 bytes */
        uint64_t w = v << len | 1ULL << (len - 1);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        memcpy(p, &w, 8);
        return p + len;
    }
    p[0] = 0;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p + 1, &v, 8);
    return p + 9;
}

/* End the open bin (if any): its length goes in its header's last byte. */
static inline uint8_t *ev_close(uint8_t *p, uint8_t **bin) {
    if (*bin) {
        (*bin)[-1] = (uint8_t)(p - *bin);
        *bin = NULL;
    }
    return p;
}

/* An item into the open bin, opened first if none is or it is nearly full. A delta too far
 * for an item's number (2^61 or more: never between two addresses of a 57-bit address
 * space, x86-64's largest) goes as the record it stands for. */
static inline uint64_t ev_zigzag(int64_t delta) {
    return (uint64_t)delta << 1 ^ (uint64_t)(delta >> 63);
}

/* An EVENTS record's head, [EVENTS, bin 8], its length byte (the last) still to write:
 * returns where its items begin. */
static inline uint8_t *ev_open(uint8_t *p) {
    p[0] = 0x92;
    p[1] = MT_REC_EVENTS;
    p[2] = 0xc4;
    return p + 4;
}

static inline uint8_t *ev_item(uint8_t *p, uint8_t **bin, int64_t delta, int alloc,
                               size_t size) {
    uint64_t zz = ev_zigzag(delta);
    if (UNLIKELY(zz >> 62)) {
        p = ev_close(p, bin);
        return alloc ? put_alloc_same(p, delta, size) : put_free_same(p, delta);
    }
    if (*bin == NULL || p - *bin > MT_EVENTS_BYTES - MT_EVENTS_ITEM_MAX) {
        p = ev_open(ev_close(p, bin));
        *bin = p;
    }
    p = ev_number(p, zz << 1 | (uint64_t)alloc);
    return alloc ? ev_number(p, size) : p;
}

/* A sampled ALLOC's record (lock held; docs/FORMAT.md, "Sampled captures"), out of exact
 * mode's way: a heap allocation carries its ordinal's reference (0, or how far back the
 * one it replaces is) instead of an address, and a context sent in full before is named
 * by its number (ALLOC_AGAIN). */
static __attribute__((noinline)) uint8_t *encode_sampled_alloc_locked(
    uint8_t *p, void *addr, size_t size, int allocator, uint32_t thread, uint32_t py,
    uint32_t nat) {
    int64_t delta;
    if (!MT_IS_MAPPING(allocator)) {
        uint64_t ordinal = g_sample_ordinal++;
        uint64_t replaced = mt_sampler_add((uintptr_t)addr, ordinal);
        delta = replaced ? (int64_t)(ordinal - (replaced - 1)) : 0;
    } else {
        delta = (int64_t)((uint64_t)(uintptr_t)addr - g_last_addr);
        g_last_addr = (uintptr_t)addr;
    }
    if (same_alloc_ctx(&g_ctx, thread, allocator, py, nat))
        return put_alloc_same(p, delta, size);
    uint64_t key = ((uint64_t)thread << 32) | (uint32_t)allocator;
    uint32_t again = mt_table_get(&g_alloc_ctxs, key, py, nat);
    if (again) {
        p = mp_array(p, 4);
        p = mp_uint(p, MT_REC_ALLOC_AGAIN);
        p = mp_uint(p, again - 1);
        p = mp_int_fast(p, delta);
        p = mp_uint_fast(p, size);
        g_ctx.alloc_thread = thread;
        g_ctx.alloc_allocator = (uint32_t)allocator;
        g_ctx.alloc_py = py;
        g_ctx.alloc_nat = nat;
        return p;
    }
    /* Numbered whether or not it is remembered (out of memory: sent in full again). */
    mt_table_put(&g_alloc_ctxs, key, py, nat, ++g_full_allocs);
    return put_full_alloc(p, &g_ctx, delta, size, allocator, thread, py, nat);
}

/* ---- per-thread event rings (exact mode) ----------------------------------------------
 *
 * Why: with one lock taken for every record, threads that allocate at once passed the
 * lock and the recorder's state from core to core at every record (8 threads churning
 * malloc/free: 3-4x the untraced run's CPU, a tenth of it spinning for the lock; 2.2x
 * with the rings, as much as 2 threads).
 *
 * How: in exact mode a thread whose record needs nothing shared (its stacks are the ones it
 * interned last, its thread index is current) puts the record, unencoded, in a ring of its
 * own (once it records often: MT_RING_AFTER), numbered from the counter of its address's
 * lane. Under the lock, a drain encodes the waiting records of all rings into the stream,
 * each ring's in its order (the thread's), each lane's in number order; the format is
 * unchanged. A thread drains when its ring is full or its record needs the lock (a new
 * stack, a new thread index, the first record after a quiet spell, a mapping of a range):
 * its own record, numbered under the lock, is encoded last in the same drain. The writer
 * drains what fits in the buffer at every turn (a live view stays 10 ms behind at most),
 * and writes a TICK only once no record waits. A drainer may release the lock while it
 * waits for room in the buffer; g_drain_busy keeps every other drain and record out
 * meanwhile.
 *
 * Lanes: the number orders the records of one address as the program ordered its calls: a
 * FREE is numbered before the real free, an ALLOC after the real allocation, so when one
 * thread frees an address and another gets it back, or one allocates a block and another
 * frees it, the second number is the larger. Records of different addresses need no order
 * between threads, so the counter is one per lane of addresses (MT_LANES lanes of 64 MiB,
 * a glibc thread arena's heap, by the address's bits from MT_LANE_SHIFT): threads that
 * allocate from arenas of their own take numbers from counters of their own (one shared
 * counter's cache line went from core to core at every record: 2 threads churning
 * malloc/free 2.5x the untraced CPU, 2.0x with lanes; 8 threads 2.3x, 1.8x). A record goes
 * into the stream once its lane's records numbered before it are in (g_expect), so each
 * thread's records are in order, and each address's: at a TICK the stream holds a state
 * the program could be in (records of other addresses made at the same time on other
 * threads may come after it). Mappings of ranges (mmap, munmap, reservations) span lanes:
 * they take the lock, in the order of their calls.
 *
 * A ring has one writer, its thread, and one reader at a time, the drain: no lock. The
 * thread raises the pushing bit of its ring's tail before it takes a number, and the tail
 * moves on, the bit down, once the record is in; a drain waits for each ring's bit to be
 * down before it takes the ring's tail. Taking the number is a full fence, so a drain
 * that begins after a number was taken sees the bit of that record's push, or the record:
 * a record numbered before one under the lock is in the rings when that one drains. A
 * drain may find a record whose lane waits for one whose push began after it looked at
 * that push's ring: the record waits for the next look (drain_begin_locked looks again).
 * Sampled mode records under the lock as before (its records are few).
 *
 * Few stores a record: a program that allocates has often just written to memory, and each
 * store waits its turn behind the program's own (churning malloc/free with a memset, nearly
 * half of an ALLOC's own time was at its push's stores). So an event is written in four
 * and a half words (a FREE in three and a half: py and nat are not written), and the
 * pushing bit shares the tail's word: 6 stores a FREE, not 10. */
typedef struct {
    uint64_t seq, addr;
    uint64_t kind;    /* size << 16 | allocator << 1 | 1 for a FREE (see event_kind) */
    uint32_t thread, py;
    uint32_t nat, unused;
} mt_event;

#define MT_EVENT_FREE 1u
/* What a ring takes: sizes below 256 TiB, and no mapping of a range (mmap, munmap, a
 * reservation), which frees or takes every address of its range, of whatever lane: those
 * take the lock, which orders them against each other and, by their own lane, against
 * the rest (see "Lanes"). */
static inline int event_fits(size_t size, int allocator) {
    return ((uint64_t)size >> 48) == 0 && allocator != MT_MMAP && allocator != MT_MUNMAP &&
           allocator != MT_MMAP_RESERVE;
}
static inline uint64_t event_kind(size_t size, int allocator, unsigned is_free) {
    return (uint64_t)size << 16 | (uint64_t)(allocator & 0x7fff) << 1 | is_free;
}

#define MT_RING_CAP 1024u /* records a thread keeps waiting (40 KiB) */
/* A thread gets its ring once it sent this many records under the lock within
 * MT_RING_WINDOW_NS: a thread that records seldom (a service's idle pool, whose threads
 * wake for a request now and then) has none, so no 40 KiB is filled for it and no drain
 * looks at it. */
#define MT_RING_AFTER 64u
#define MT_RING_WINDOW_NS 100000000ULL /* 100 ms: rings for 640 records a second or more */
/* A ring takes whole pages, its first holding the line its thread and the drains share:
 * when a recording stops, every other page is handed back to the system (ring_release),
 * and a thread still alive after a detach keeps 4 KiB for its ring, not 60 KiB (its
 * events and its packed bytes). */
static size_t g_page, g_ring_bytes;

#define MT_PACK_CAP 16384u /* packed bytes a thread keeps waiting (see "Packing"); 2^k */
#define MT_PACK_ROOM 64u    /* what a packed record may take, and ev_number's overrun */
#define MT_PACK_WRAP 0xff   /* the rest of pk up to its end is unused: go on at its start */
#define MT_PACK_ALLOC 1u    /* pk_known: the context of its bins' ALLOC items is known */
#define MT_PACK_FREE 2u     /* ... and of its FREE items */

typedef struct mt_ring {
    /* A line that its thread writes at every push, and drains read once each. */
    int dead;              /* its thread ended: freed by a drain once empty */
    uint64_t head;         /* records [head, tail) wait, in their thread's order */
    uint64_t tail;         /* with MT_RING_PUSHING while its thread puts a record in */
    /* Packing (see "Packing"): its thread's alone, read by a drain once no push is under
     * way (the tail's release store publishes them). */
    uint64_t pk_len;       /* bytes packed so far (pk is circular: at pk_len % MT_PACK_CAP) */
    uint64_t pk_bin;       /* where the open bin's items begin (as pk_len counts); 0: none */
    uint32_t pk_seen;      /* pk_epoch as its last push saw it */
    uint32_t pk_known;     /* MT_PACK_ALLOC | MT_PACK_FREE: the contexts its items repeat */
    uint64_t pk_last;      /* the address of its last packed record */
    uint32_t pk_thread, pk_py, pk_nat, pk_allocator; /* an ALLOC item's context */
    uint32_t pk_free_thread, pk_free_allocator;      /* a FREE item's */
    /* A drain's (lock held), on a line of their own: the thread reads them at every push. */
    uint64_t pk_head __attribute__((aligned(64))); /* bytes [pk_head, pk_len) wait */
    uint32_t pk_epoch;     /* bumped by each drain that looks at packed bytes */
    uint32_t pk_take;      /* a drain reads where the bytes end: pushes go to events */
    mt_event ev[MT_RING_CAP] __attribute__((aligned(64)));
    uint8_t pk[MT_PACK_CAP];
} mt_ring;

/* A drain's place in one ring: its records [cur, end) are to be encoded. */
typedef struct {
    mt_ring *ring;
    uint64_t cur, end;
} mt_drain_cursor;

/* Every thread's ring (lock held), g_n_rings of them, g_dead_rings of them dead. An array,
 * not a list through the rings: a drain looks at every ring, and the loads of a list's
 * links wait for each other (200 idle threads' rings cost a busy thread 7% more CPU, half of
 * it in the walk that looks for dead rings after every drain). */
static mt_ring **g_rings;
static size_t g_n_rings, g_rings_cap, g_dead_rings;
static int g_drain_busy;        /* a drain is under way (the lock may be released) */
static unsigned g_drain_seq;    /* bumped when a drain ends */
static int g_drain_waiters;
static mt_drain_cursor *g_drain_set; /* the rings with records to encode in this drain */
static size_t g_drain_set_cap;
/* The records' numbers: one counter per lane of addresses, each alone in its cache line
 * (see "Lanes" above). g_expect: each lane's next number to be encoded. */
#define MT_LANES 64u
#define MT_LANE_SHIFT 26 /* 64 MiB: a glibc thread arena's heap */
static struct {
    uint64_t next;
    char pad[56]; /* the line is theirs alone: nothing else is read from it */
} g_lanes[MT_LANES] __attribute__((aligned(64)));
static uint64_t g_expect[MT_LANES];

static inline unsigned lane_of(uint64_t addr) {
    return (unsigned)(addr >> MT_LANE_SHIFT) & (MT_LANES - 1);
}
/* Read by every record, written once a recording or a quiet spell: a line of their own. */
static struct {
    int on;             /* this recording's records go through the rings */
    volatile int quiet; /* the writer saw a quiet spell: the next record is stamped at once */
    int pack;           /* the only ring's thread packs its records (see "Packing") */
    char pad[52];
} g_rs __attribute__((aligned(64)));
static int g_pack_live;         /* a ring may hold packed bytes (lock held) */
static uint64_t g_packed_bytes; /* taken from packed bytes in this recording (lock held) */
#define g_rings_on g_rs.on

#define MT_RING_PUSHING (1ULL << 63)

/* A drain's look at a ring's tail: once no push is under way. */
static uint64_t ring_tail(mt_ring *r) {
    uint64_t tail;
    for (int spins = 0; (tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE)) & MT_RING_PUSHING;
         spins++) {
        if (spins < 100)
            cpu_relax();
        else
            sched_yield();
    }
    return tail;
}

/* A second ring: packing ends for this recording (lock held; see "Packing"). Its bytes
 * go first: pushes that saw packing on are over by then (pack_take_locked waits), and
 * those after it see it off. */
static int drain_begin_locked(uint64_t limit, int skip_gaps);
static void drain_end_locked(void);
static void pack_end_locked(void) {
    g_rs.pack = 0;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (g_pack_live && g_running && g_rings_on) {
        drain_begin_locked(UINT64_MAX, 0);
        drain_end_locked();
    }
    g_pack_live = 0;
}

/* The thread's ring, made once it records often (MT_RING_AFTER; NULL: none, the record
 * takes the lock). */
static __thread int t_ring_off __attribute__((tls_model("initial-exec"))) = 0;
static mt_ring *thread_ring(stack_cache *c) {
    if (LIKELY(c->ring != NULL) || t_ring_off) return c->ring;
    if (c->ringless < MT_RING_AFTER) {
        uint64_t now = coarse_ns();
        if (now - c->ringless_ns > MT_RING_WINDOW_NS) {
            c->ringless_ns = now;
            c->ringless = 0;
        }
        c->ringless++;
        return NULL;
    }
    void *mem = NULL; /* whole pages of its own (see g_ring_bytes) */
    if (posix_memalign(&mem, g_page, g_ring_bytes) != 0) {
        t_ring_off = 1;
        return NULL;
    }
    /* Only the shared line is cleared: a slot is written before it is read, and pages
     * nothing wrote to stay out of memory (a thread that records a little fills a few). */
    mt_ring *r = memset(mem, 0, offsetof(mt_ring, ev));
    lock();
    if (g_n_rings == g_rings_cap) {
        size_t cap = g_rings_cap ? g_rings_cap * 2 : 16;
        mt_ring **bigger = realloc(g_rings, cap * sizeof *bigger);
        if (bigger == NULL) {
            unlock();
            free(r);
            t_ring_off = 1;
            return NULL;
        }
        g_rings = bigger;
        g_rings_cap = cap;
    }
    g_rings[g_n_rings++] = r;
    if (g_rs.pack && g_n_rings > 1) pack_end_locked();
    unlock();
    c->ring = r;
    return r;
}

/* A stopped recording's ring (lock held, after its last drain): its record pages go back
 * to the system. Nothing writes a slot until the next recording (a push that comes after
 * the stop sees tracking off, see ring_push), which finds zeroed pages, as a new ring does.
 * The ring stays where it is: its thread still points at it. */
static void ring_release(mt_ring *r) {
    if (g_ring_bytes > g_page) madvise((char *)r + g_page, g_ring_bytes - g_page, MADV_DONTNEED);
}

/* A record into the thread's ring (an ALLOC's py and nat are written only when `alloc`):
 * 1: pushed; 0: the ring is full; -1: tracing has stopped (nothing to record). */
static inline __attribute__((always_inline)) int ring_push(mt_ring *r, uint64_t addr,
                                                            uint64_t kind, uint32_t thread,
                                                            int alloc, uint32_t py,
                                                            uint32_t nat) {
    uint64_t tail = r->tail; /* its own: the bit is down */
    if (UNLIKELY(tail - __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == MT_RING_CAP)) return 0;
    __atomic_store_n(&r->tail, tail | MT_RING_PUSHING, __ATOMIC_RELAXED);
#if !defined(__x86_64__) && !defined(__i386__)
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* x86's locked add below is one already */
#endif
    uint64_t seq = __atomic_fetch_add(&g_lanes[lane_of(addr)].next, 1, __ATOMIC_SEQ_CST);
    int ok = mt_tracking; /* read after the fence: a stop's last drain sees this push */
    if (LIKELY(ok)) {
        mt_event *slot = &r->ev[tail & (MT_RING_CAP - 1)];
        slot->seq = seq;
        slot->addr = addr;
        slot->kind = kind;
        slot->thread = thread;
        if (alloc) {
            slot->py = py;
            slot->nat = nat;
        }
        tail++;
    }
    __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
    return ok ? 1 : -1;
}

/* ---- Packing ---------------------------------------------------------------------------
 *
 * While one thread alone has a ring (a single-threaded program, or one busy thread among
 * threads that record seldom and take the lock), that thread encodes its records itself,
 * in its ring's pk bytes, as they will go into the stream: EVENTS bins whose items repeat
 * the contexts its own packed records set, and "raw" records (a 0 byte, then an mt_pack_raw)
 * for the others, which a drain encodes against the stream's context as encode_span would.
 * A drain then copies the bins: no 40-byte event to write and read back, no lane number to
 * take (no other ring's records to merge with), no item to encode under the lock (11 M
 * malloc/free through ctypes: 1.516x -> 1.485x, 15 interleaved rounds).
 *
 * The bytes go into the stream in order with every other record: a record under the lock
 * drains first, and a drain takes every packed byte. A drain raises pk_take, then (after a
 * full fence) waits for the push under way to end, reads where the bytes end, bumps
 * pk_epoch and lowers pk_take (release). A push raises MT_RING_PUSHING, then (after a
 * fence) reads pk_take: either the drain waits for the push, or the push sees pk_take up
 * (it goes to the ring's events, which drains take after the bytes) or down with the new
 * epoch. A push that sees a new epoch starts again from a raw record with no context known
 * (other records may come in the stream between the drain's bytes and its own), and never
 * adds to a bin the drain may have taken. (A drain that bumped the epoch before waiting,
 * without pk_take, let a push that came in between open a bin with the new epoch, which
 * the drain took and later pushes went on filling.) A second ring ends packing for the
 * recording (thread_ring: the first ring's bytes are drained once no push is under way;
 * pushes that come after see g_rs.pack off and go to the ring's events). */
typedef struct __attribute__((packed)) {
    uint64_t addr;
    uint64_t prev; /* the address packed before it: where the bin before it ends */
    uint64_t kind;
    uint32_t thread, py, nat;
} mt_pack_raw;

static inline void store_load_fence(void) {
#if defined(__x86_64__)
    __asm__ __volatile__("lock addl $0, (%%rsp)" ::: "memory", "cc");
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

static void pack_full(mt_ring *r);

/* A record into the thread's packed bytes: 1 packed, -1 tracing has stopped, 0 not now
 * (packing is off, or the ring holds events: its later records must come after them). */
static inline __attribute__((always_inline)) int pack_push(mt_ring *r, uint64_t addr,
                                                            uint64_t kind, uint32_t thread,
                                                            int alloc, uint32_t py,
                                                            uint32_t nat) {
    /* Room for a record and a wrap (outside the push: a drain waits for pushes to end).
     * Only this thread adds bytes, and drains only take them: room now is room below. */
    int full = r->pk_len - __atomic_load_n(&r->pk_head, __ATOMIC_ACQUIRE) >
               MT_PACK_CAP - 2 * MT_PACK_ROOM;
    if (UNLIKELY(full)) pack_full(r);
    uint64_t tail = r->tail; /* its own: the bit is down */
    __atomic_store_n(&r->tail, tail | MT_RING_PUSHING, __ATOMIC_RELAXED);
    store_load_fence();
    int ok = mt_tracking; /* read after the fence: a stop's last drain sees this push */
    if (UNLIKELY(!ok || !g_rs.pack || __atomic_load_n(&r->pk_take, __ATOMIC_ACQUIRE) ||
                 __atomic_load_n(&r->head, __ATOMIC_RELAXED) != tail)) {
        __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
        return ok ? 0 : -1;
    }
    uint64_t len = r->pk_len;
    uint32_t epoch = __atomic_load_n(&r->pk_epoch, __ATOMIC_RELAXED);
    if (UNLIKELY(epoch != r->pk_seen)) { /* a drain looked: start again */
        r->pk_seen = epoch;
        r->pk_known = 0;
        r->pk_bin = 0;
    }
    if (UNLIKELY(full) && len - __atomic_load_n(&r->pk_head, __ATOMIC_ACQUIRE) >
                              MT_PACK_CAP - 2 * MT_PACK_ROOM) { /* not taken (stopping) */
        __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
        return 0;
    }
    uint32_t at = (uint32_t)len & (MT_PACK_CAP - 1);
    if (UNLIKELY(at > MT_PACK_CAP - MT_PACK_ROOM)) { /* no record goes across pk's end */
        r->pk[at] = MT_PACK_WRAP;
        len += MT_PACK_CAP - at;
        at = 0;
        r->pk_bin = 0;
    }
    uint8_t *base = r->pk + at, *p = base;
    uint64_t zz = ev_zigzag((int64_t)(addr - r->pk_last));
    size_t size = (size_t)(kind >> 16);
    uint32_t allocator = (uint32_t)(kind >> 1 & 0x7fff);
    int item = alloc ? (r->pk_known & MT_PACK_ALLOC) && thread == r->pk_thread &&
                           py == r->pk_py && nat == r->pk_nat && allocator == r->pk_allocator
                     : (r->pk_known & MT_PACK_FREE) && size == 0 &&
                           thread == r->pk_free_thread && allocator == r->pk_free_allocator;
    if (LIKELY(item && !(zz >> 62))) {
        uint64_t bin = r->pk_bin;
        if (bin == 0 || len - bin > MT_EVENTS_BYTES - MT_EVENTS_ITEM_MAX) {
            p = ev_open(p);
            bin = len + 4;
            r->pk_bin = bin;
        }
        p = ev_number(p, zz << 1 | (uint64_t)alloc);
        if (alloc) p = ev_number(p, size);
        /* the bin is whole after each push: its length in its header's last byte */
        uint64_t end = len + (uint64_t)(p - base);
        r->pk[((uint32_t)bin - 1) & (MT_PACK_CAP - 1)] = (uint8_t)(end - bin);
    } else {
        mt_pack_raw raw = {addr, r->pk_last, kind, thread, alloc ? py : 0, alloc ? nat : 0};
        p[0] = 0;
        memcpy(p + 1, &raw, sizeof raw);
        p += 1 + sizeof raw;
        r->pk_bin = 0;
        if (alloc) {
            r->pk_known |= MT_PACK_ALLOC;
            r->pk_thread = thread;
            r->pk_py = py;
            r->pk_nat = nat;
            r->pk_allocator = allocator;
        } else if (size == 0) {
            r->pk_known |= MT_PACK_FREE;
            r->pk_free_thread = thread;
            r->pk_free_allocator = allocator;
        }
    }
    r->pk_last = addr;
    r->pk_len = len + (uint64_t)(p - base);
    __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
    return 1;
}

/* A record into the thread's ring, packed while packing is on (see ring_push's results). */
static inline __attribute__((always_inline)) int ring_record(mt_ring *r, uint64_t addr,
                                                              uint64_t kind, uint32_t thread,
                                                              int alloc, uint32_t py,
                                                              uint32_t nat) {
    if (g_rs.pack) { /* read again by pack_push after its fence */
        int rc = pack_push(r, addr, kind, thread, alloc, py, nat);
        if (rc != 0) return rc;
    }
    return ring_push(r, addr, kind, thread, alloc, py, nat);
}

/* An exact ALLOC (lock held). */
static inline void encode_alloc_locked(uint64_t addr, size_t size, int allocator,
                                       uint32_t thread, uint32_t py, uint32_t nat) {
    uint8_t *p = reserve(48); /* at most 37 bytes written: see mp_int_fast */
    if (!p) return;
    int64_t delta = (int64_t)(addr - g_last_addr);
    g_last_addr = addr;
    commit(put_alloc(p, &g_ctx, delta, size, allocator, thread, py, nat));
}

/* A FREE (lock held) of an address, or (by_ordinal: sampling) of the sampled ALLOC of
 * that ordinal. Its delta is taken once there is room: reserve() may have waited with the
 * lock released, and other records moved the previous address (or the ordinals) meanwhile. */
static inline void encode_free_locked(uint64_t addr, int by_ordinal, uint64_t ordinal,
                                      size_t size, int allocator, uint32_t thread) {
    uint8_t *p = reserve(32); /* at most 27 bytes written: see mp_int_fast */
    if (!p) return;
    int64_t delta;
    if (by_ordinal) { /* its ALLOC, named by how many sampled ALLOCs came after it */
        delta = (int64_t)(g_sample_ordinal - 1 - ordinal);
    } else {
        delta = (int64_t)(addr - g_last_addr);
        g_last_addr = addr;
    }
    commit(put_free(p, &g_ctx, delta, size, allocator, thread));
}

/* An exact ALLOC or FREE of kind `kind` (event_kind) in a drain: an item when it repeats
 * its context (ctx), else its full record, which sets it. */
static inline __attribute__((always_inline)) uint8_t *ev_record(uint8_t *p, uint8_t **bin,
                                                                 mt_rec_ctx *ctx,
                                                                 int64_t delta, uint64_t kind,
                                                                 uint32_t thread, uint32_t py,
                                                                 uint32_t nat) {
    size_t size = (size_t)(kind >> 16);
    int allocator = (int)(kind >> 1 & 0x7fff);
    if (kind & MT_EVENT_FREE) {
        if (same_free_ctx(ctx, size, thread, allocator)) return ev_item(p, bin, delta, 0, 0);
        return put_full_free(ev_close(p, bin), ctx, delta, size, allocator, thread);
    }
    if (same_alloc_ctx(ctx, thread, allocator, py, nat)) return ev_item(p, bin, delta, 1, size);
    return put_full_alloc(ev_close(p, bin), ctx, delta, size, allocator, thread, py, nat);
}

/* Encode ring r's records from i up to stop, through the drain's local copies, up to the
 * first whose lane has a record numbered before it still to come; returns where it
 * stopped. A record numbered below its lane's next (a push that straddled a new start,
 * or one that came after its lane gave up waiting: see skip_gaps) goes as it is. */
static inline __attribute__((always_inline)) uint64_t encode_span(const mt_ring *r, uint64_t i,
                                                                  uint64_t stop, uint8_t **pp,
                                                                  uint64_t *lastp,
                                                                  mt_rec_ctx *ctx,
                                                                  uint8_t **bin) {
    uint8_t *p = *pp;
    uint64_t last = *lastp;
    while (i < stop) {
        const mt_event *e = &r->ev[i & (MT_RING_CAP - 1)];
        unsigned lane = lane_of(e->addr);
        uint64_t want = g_expect[lane];
        if (e->seq > want) break;
        if (e->seq == want) g_expect[lane] = want + 1;
        int64_t delta = (int64_t)(e->addr - last);
        last = e->addr;
        p = ev_record(p, bin, ctx, delta, e->kind, e->thread, e->py, e->nat);
        i++;
    }
    *pp = p;
    *lastp = last;
    return i;
}

/* A drain that must not wait (the last one, when a recording stops) finds a lane whose
 * next number never comes: a push that took it and then saw tracking stopped. Every record
 * is in the rings by then, so the lowest number a lane has waiting is its next (lock held;
 * 1 when a lane moved on). */
static int skip_gaps_locked(size_t n_set) {
    uint64_t lowest[MT_LANES];
    for (unsigned b = 0; b < MT_LANES; b++) lowest[b] = UINT64_MAX;
    for (size_t k = 0; k < n_set; k++)
        for (uint64_t i = g_drain_set[k].cur; i < g_drain_set[k].end; i++) {
            const mt_event *e = &g_drain_set[k].ring->ev[i & (MT_RING_CAP - 1)];
            unsigned lane = lane_of(e->addr);
            if (e->seq < lowest[lane]) lowest[lane] = e->seq;
        }
    int moved = 0;
    for (unsigned b = 0; b < MT_LANES; b++)
        if (lowest[b] != UINT64_MAX && lowest[b] > g_expect[b]) {
            g_expect[b] = lowest[b];
            moved = 1;
        }
    return moved;
}

/* Encode the records [cur, end) of the drain set's n_set rings (lock held), each ring's in
 * its order and each lane's in number order, at most `limit` of them, as
 * encode_alloc_locked and encode_free_locked would one by one; each cursor moves past what
 * it encoded. Returns how many. A record whose lane waits for a record not yet in any ring
 * (its push is under way) stops its ring's run: it and the ring's later records wait for
 * the next drain; unless `skip_gaps` (see skip_gaps_locked). When the stream takes no more
 * (tracing stopped, or failed) the rest are dropped, as one by one they would be.
 * Why one loop for the whole merge: the record bodies write through byte pointers, which
 * may alias the recorder's state, so one record at a time reloads and stores the address
 * chain, the contexts and the buffer's length around every byte; here a local copy of them
 * stays in registers for a whole batch (what the buffer has room for), and threads that
 * allocate at the same time in one lane, whose records alternate in the merge a few at a
 * time, pay for that copy once a batch rather than once a run (2 threads: the drain was
 * 16% of the traced run's CPU). */
static uint64_t encode_merged_locked(size_t n_set, uint64_t limit, int skip_gaps) {
    uint64_t done = 0;
    while (done < limit) {
        if (reserve(48) == NULL) { /* stopped or failed: the rest go unrecorded */
            for (size_t k = 0; k < n_set; k++) {
                done += g_drain_set[k].end - g_drain_set[k].cur;
                g_drain_set[k].cur = g_drain_set[k].end;
            }
            break;
        }
        uint64_t batch = (g_active.cap - g_active.len) / 48, n = 0;
        if (batch > limit - done) batch = limit - done;
        uint8_t *p = g_active.data + g_active.len;
        uint64_t last = g_last_addr;
        mt_rec_ctx ctx = g_ctx;
        uint8_t *bin = NULL; /* the EVENTS bin open, if any: its items start there */
        int blocked = 0;
        while (n < batch) {
            /* Each ring's run as far as its lanes allow, then again while any moved. */
            int moved = 0, waiting = 0;
            for (size_t k = 0; k < n_set && n < batch; k++) {
                mt_drain_cursor *d = &g_drain_set[k];
                if (d->cur == d->end) continue;
                uint64_t stop = d->end - d->cur > batch - n ? d->cur + (batch - n) : d->end;
                uint64_t i = encode_span(d->ring, d->cur, stop, &p, &last, &ctx, &bin);
                moved |= i != d->cur;
                n += i - d->cur;
                d->cur = i;
                waiting |= i != d->end;
            }
            if (!waiting) break;
            if (!moved && !(skip_gaps && skip_gaps_locked(n_set))) {
                blocked = 1;
                break;
            }
        }
        p = ev_close(p, &bin);
        g_last_addr = last;
        g_ctx = ctx;
        g_active.len = (size_t)(p - g_active.data);
        g_records_since_tick += n;
        done += n;
        if (n < batch || blocked) break; /* every record that may go is in */
    }
    return done;
}

/* A ring's packed bytes into the stream (lock held, a drain under way; see "Packing"):
 * bins as they are, raw records encoded. A drain that must not wait for room (the
 * writer's) leaves them when they do not fit; returns 1 when none is left. */
static int pack_take_locked(mt_ring *r, int may_wait) {
    /* Where the bytes end, read while no push packs (those that come meanwhile go to the
     * ring's events, drained after these bytes); the pushes after it see the new epoch. */
    __atomic_store_n(&r->pk_take, 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    (void)ring_tail(r); /* no push under way: what it packed is all there */
    uint64_t head = r->pk_head, len = r->pk_len;
    uint64_t last_packed = r->pk_last;
    __atomic_store_n(&r->pk_epoch, r->pk_epoch + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&r->pk_take, 0, __ATOMIC_RELEASE);
    if (head == len) return 1;
    size_t need = (size_t)(len - head) + MT_PACK_ROOM; /* wraps take room in pk only */
    if (!may_wait && g_active.cap - g_active.len < need) return 0;
    /* Room first: reserve() may wait with the lock released, and the bytes go in at once
     * after it (no record may come between two of them). The thread only adds after len. */
    uint8_t *p = reserve(need);
    if (p != NULL) {
        uint8_t *bin = NULL;
        uint64_t records = 0;
        int after_bin = 0;
        /* Each record is checked to lie within what was packed before it is read: bytes
         * that do not (a broken protocol, never seen) end the walk, not the program. */
        for (uint64_t at = head; at < len;) {
            uint32_t in = (uint32_t)at & (MT_PACK_CAP - 1);
            const uint8_t *q = r->pk + in;
            if (*q == MT_PACK_WRAP) {
                at += MT_PACK_CAP - in;
                continue;
            }
            if (*q == 0 && at + 1 + sizeof(mt_pack_raw) <= len &&
                in + 1 + sizeof(mt_pack_raw) <= MT_PACK_CAP) {
                mt_pack_raw raw;
                memcpy(&raw, q + 1, sizeof raw);
                at += 1 + sizeof raw;
                if (after_bin) g_last_addr = raw.prev;
                after_bin = 0;
                int64_t delta = (int64_t)(raw.addr - g_last_addr);
                g_last_addr = raw.addr;
                p = ev_record(p, &bin, &g_ctx, delta, raw.kind, raw.thread, raw.py, raw.nat);
            } else if (*q == 0x92 && q[1] == MT_REC_EVENTS && q[2] == 0xc4 &&
                       at + 4 + q[3] <= len && in + 4 + (uint32_t)q[3] <= MT_PACK_CAP) {
                /* a bin: [0x92, EVENTS, 0xc4, n] and n bytes of items */
                p = ev_close(p, &bin);
                size_t n = 4 + (size_t)q[3];
                memcpy(p, q, n);
                p += n;
                at += n;
                after_bin = 1;
            } else {
                break; /* the rest is dropped: pk_head goes past it below */
            }
            records++;
        }
        p = ev_close(p, &bin);
        if (after_bin) g_last_addr = last_packed;
        g_active.len = (size_t)(p - g_active.data);
        g_records_since_tick += records;
        g_packed_bytes += len - head;
    } /* else stopped or failed: the rest go unrecorded */
    __atomic_store_n(&r->pk_head, len, __ATOMIC_RELEASE);
    return 1;
}

/* Every ring's packed bytes (lock held, a drain under way); 1 when none is left. */
static int pack_take_all_locked(int may_wait) {
    int all = 1;
    for (size_t i = 0; i < g_n_rings; i++) all &= pack_take_locked(g_rings[i], may_wait);
    return all;
}

/* Begin a drain (lock held): wait for any other to end, then encode every record in the
 * rings that may go (see encode_merged_locked), at most `limit` of them (the writer: what
 * fits in the buffer, so it never waits for room). Returns 1 when every record in the
 * rings was encoded. The caller may encode a record of its own, then ends with
 * drain_end_locked. */
static uint64_t drain_pass_locked(uint64_t limit, int skip_gaps, uint64_t *waiting_out);
static int drain_begin_locked(uint64_t limit, int skip_gaps) {
    while (g_drain_busy) {
        g_drain_waiters++;
        wait_locked(&g_drain_seq, g_drain_seq, 0);
        g_drain_waiters--;
    }
    g_drain_busy = 1;
    /* Packed bytes are older than their ring's events (a ring with events packs no more). */
    if (g_pack_live && !pack_take_all_locked(limit == UINT64_MAX)) return 0;
    /* A record held back by one numbered before it whose push was not over when its ring
     * was looked at: a second look finds that one (pushes do not wait). */
    for (int look = 0;; look++) {
        uint64_t waiting = 0, done = drain_pass_locked(limit, skip_gaps, &waiting);
        if (done == waiting) return 1;
        if (done == limit || look == 2) return 0;
        limit -= done;
    }
}

/* The thread's packed bytes are nearly MT_PACK_CAP: a drain takes them. */
static __attribute__((noinline)) void pack_full(mt_ring *r) {
    (void)r;
    lock();
    if (mt_tracking && g_rings_on) {
        drain_begin_locked(UINT64_MAX, 0);
        drain_end_locked();
    }
    unlock();
}

/* One look at every ring for drain_begin_locked: returns how many records were encoded,
 * and in *waiting how many the rings held. */
static uint64_t drain_pass_locked(uint64_t limit, int skip_gaps, uint64_t *waiting_out) {
    size_t n_set = 0;
    uint64_t waiting = 0;
    for (size_t i = 0; i < g_n_rings; i++) {
        mt_ring *r = g_rings[i];
        uint64_t head = r->head, tail = ring_tail(r);
        /* [head, tail) are this drain's to read: the thread only appends after tail. */
        if (tail == head) continue;
        if (n_set == g_drain_set_cap) {
            size_t cap = g_drain_set_cap ? g_drain_set_cap * 2 : 16;
            mt_drain_cursor *bigger = realloc(g_drain_set, cap * sizeof *bigger);
            if (bigger == NULL) { /* out of memory: they wait for the next drain */
                waiting++;
                continue;
            }
            g_drain_set = bigger;
            g_drain_set_cap = cap;
        }
        g_drain_set[n_set++] = (mt_drain_cursor){r, head, tail};
        waiting += tail - head;
    }
    uint64_t done = encode_merged_locked(n_set, limit, skip_gaps);
    for (size_t k = 0; k < n_set; k++)
        __atomic_store_n(&g_drain_set[k].ring->head, g_drain_set[k].cur, __ATOMIC_RELEASE);
    *waiting_out = waiting;
    return done;
}

/* Rings of threads that ended, once empty, go (lock held, no drain under way). */
static void free_dead_rings_locked(void) {
    if (g_dead_rings == 0) return;
    size_t kept = 0;
    for (size_t i = 0; i < g_n_rings; i++) {
        mt_ring *r = g_rings[i];
        if (r->dead && r->head == r->tail && r->pk_head == r->pk_len) {
            free(r);
            g_dead_rings--;
        } else {
            g_rings[kept++] = r;
        }
    }
    g_n_rings = kept;
}

static void drain_end_locked(void) {
    free_dead_rings_locked();
    g_drain_busy = 0;
    __atomic_add_fetch(&g_drain_seq, 1, __ATOMIC_RELEASE);
    if (g_drain_waiters) futex(&g_drain_seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

/* Every waiting record into the stream (lock held): at stop, before the TRAILER. Tracing
 * is off: a lane's number that no ring holds now never comes (see skip_gaps_locked). */
static void drain_all_locked(void) {
    if (!g_rings_on) return;
    drain_begin_locked(UINT64_MAX, 1);
    drain_end_locked();
}

/* The writer's turn (lock held): what fits in the buffer without waiting; 1 when no record
 * is left waiting (a TICK may then be written). */
static int drain_writer_locked(void) {
    if (!g_rings_on) return 1;
    if (g_drain_busy) return 0; /* a producer drains, waiting for the room this turn makes */
    uint64_t room = g_active.cap - g_active.len;
    int all = drain_begin_locked(room / 48, 0);
    drain_end_locked();
    return all;
}

/* A thread ends (its stack cache's destructor): its later records (the C library's own
 * frees as the thread ends) take the lock, and its ring goes: now when no recording is
 * open (the last stop drained it, and no drain will come: after a detach, a program
 * whose threads come and go would keep every ended thread's ring), else once a drain has
 * emptied it. */
static void ring_retire(stack_cache *c) {
    t_ring_off = 1;
    mt_ring *r = c->ring;
    if (r == NULL) return;
    c->ring = NULL;
    lock();
    if (g_running) {
        r->dead = 1;
        g_dead_rings++;
    } else {
        for (size_t i = 0; i < g_n_rings; i++) {
            if (g_rings[i] == r) {
                g_rings[i] = g_rings[--g_n_rings];
                free(r);
                break;
            }
        }
    }
    unlock();
}

long mt_recorder_packed_bytes(void) {
    int saved = mt_guard;
    mt_guard = 1;
    lock();
    long n = (long)g_packed_bytes;
    unlock();
    mt_guard = saved;
    return n;
}

int mt_recorder_rings(void) {
    int saved = mt_guard, n = 0;
    mt_guard = 1;
    lock();
    n = (int)g_n_rings;
    unlock();
    mt_guard = saved;
    return n;
}

void mt_recorder_release(void) {
    int saved = mt_guard;
    mt_guard = 1;
    lock();
    if (!g_running) mt_table_free(&g_natnodes);
    unlock();
    mt_guard = saved;
}

long mt_recorder_held_bytes(void) {
    int saved = mt_guard;
    mt_guard = 1;
    lock();
    long bytes = (long)(g_active.cap + g_spare.cap);
    mt_table *tables[] = {&g_codes, &g_pynodes, &g_natnodes, &g_alloc_ctxs};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
        if (tables[i]->slots) bytes += (long)((tables[i]->mask + 1) * sizeof(mt_slot));
    unlock();
    mt_guard = saved;
    return bytes;
}

/* The resident bytes of a page-aligned block of the recorder's (mincore; -1: cannot tell). */
static long block_resident(void *block, size_t len) {
    unsigned char pages[64]; /* a ring's 15 pages, a map's 16, at 4 KiB */
    size_t n = (len + g_page - 1) / g_page;
    long bytes = 0;
    if (n > sizeof pages || mincore(block, len, pages) != 0) return -1;
    for (size_t k = 0; k < n; k++) bytes += (pages[k] & 1) ? (long)g_page : 0;
    return bytes;
}

/* The resident bytes of every thread's ring, or (maps) of every native-node map: for
 * tests. */
static long recorder_resident(int maps) {
    int saved = mt_guard;
    mt_guard = 1;
    long bytes = 0;
    lock();
    size_t n = maps ? g_n_memos : g_n_rings;
    for (size_t i = 0; i < n && bytes >= 0; i++) {
        long b = maps ? block_resident(g_memos[i], sizeof(natnode_memo))
                      : block_resident(g_rings[i], g_ring_bytes);
        bytes = b < 0 ? -1 : bytes + b;
    }
    unlock();
    mt_guard = saved;
    return bytes;
}

long mt_recorder_ring_resident(void) { return recorder_resident(0); }

long mt_recorder_memo_resident(void) { return recorder_resident(1); }

/* Whether a record of this thread can go to its ring: its thread index is current, and no
 * quiet spell ended (the record after one is stamped at once, under the lock). */
static inline int ring_ok(void) {
    return g_rings_on && t_thread && t_thread_gen == g_generation &&
           t_renames == g_hot.renames && !g_rs.quiet;
}

/* Under the lock, a record of address `addr` that takes it: it takes its lane's next
 * number, then every record in the rings goes first; those its lane numbered before it are
 * all in the rings by then (their pushes raised their bits before they took their numbers,
 * and the drain waits for the bits), and so are those of their own rings before them. */
static inline void direct_begin_locked(uint64_t addr) {
    if (!g_rings_on) return;
    unsigned lane = lane_of(addr);
    uint64_t own = __atomic_fetch_add(&g_lanes[lane].next, 1, __ATOMIC_SEQ_CST);
    drain_begin_locked(UINT64_MAX, 0);
    if (g_expect[lane] <= own) g_expect[lane] = own + 1; /* this record's turn */
}

static inline void direct_end_locked(void) {
    if (g_rings_on) drain_end_locked();
}

/* The native stack of an allocation is the one the thread recorded last, and that one is
 * the kept unwinding (capture_native's test, when nothing else is to be done): its node, or
 * 0 when the record takes the whole path. */
static inline uint32_t native_unchanged(stack_cache *c, uintptr_t ra, uintptr_t cfa) {
    if (!c->nat_is_unw || c->unw_depth != c->nat_depth || mt_t_dlcall != NULL ||
        !kept_unwinding_holds(c, ra, cfa))
        return 0;
    c->hits_since_fill++;
    return c->nat_nodes[c->unw_depth - 1];
}

/* The common exact ALLOC: a thread with a ring whose Python stack, and native stack if
 * recorded, are the ones it recorded last. In as few instructions and stores as that takes
 * (a program that allocates has often just written to memory, and every store waits
 * behind its stores): no errno to keep, as nothing on this path makes a system call. The
 * guard is still set: a signal handler that allocates, or exits, while this thread is half
 * way through its push must not push too, nor wait for the push to end. Returns
 * MT_FAST_DONE, or what the whole path (record_alloc) need not find out again: that the
 * native stack is the kept unwinding, interned last (MT_FAST_NAT_HELD), that the Python
 * stack is not the previous one (MT_FAST_PY_CHANGED). */
#define MT_FAST_DONE 1
#define MT_FAST_NAT_HELD 2
#define MT_FAST_PY_CHANGED 4
static inline __attribute__((always_inline)) int record_alloc_fast(void *addr, size_t size,
                                                                   int allocator, uintptr_t ra,
                                                                   uintptr_t cfa) {
    stack_cache *c = t_cache;
    mt_ring *r;
    if (UNLIKELY(c == NULL) || (r = c->ring) == NULL || c->gen != g_generation ||
        g_python_gone || !event_fits(size, allocator) || !ring_ok())
        return 0;
    mt_guard = 1; /* before the stacks are read: a handler's record may intern others */
    int depth = c->py_depth, known = 0;
    uint32_t nat = 0;
    if (depth != 0 && (!g_native || (nat = native_unchanged(c, ra, cfa)) != 0)) {
        known = g_native ? MT_FAST_NAT_HELD : 0;
        if (!mt_python_unchanged(c->py, depth, &c->py_key))
            known |= MT_FAST_PY_CHANGED;
        else if (ring_record(r, (uintptr_t)addr, event_kind(size, allocator, 0), t_thread, 1,
                           c->py_nodes[depth - 1], nat) != 0)
            known = MT_FAST_DONE;
    }
    /* Otherwise the guard stays up into record_alloc: what this found out holds only while
     * no handler's record changes the thread's stacks. */
    if (known == MT_FAST_DONE) mt_guard = 0;
    return known;
}

static __attribute__((noinline)) void record_alloc(void *addr, size_t size, int allocator,
                                                   uintptr_t ra, uintptr_t cfa, int known) {
    int *err = errno_ptr(), saved_errno = *err;
    mt_guard = 1;
    stack_cache *c = thread_cache();
    int n_ips = 0, depth = 0, py_same = 0, nat_same = 0, from_unw = 0;
    if (c != NULL) {
        if (known & MT_FAST_NAT_HELD) { /* native_unchanged: no copy to make, no test again */
            n_ips = c->unw_depth;
            from_unw = 1;
        } else if (g_native) {
            n_ips = capture_native(c, ra, cfa, &from_unw);
        }
        /* What the stacks share with the thread's previous ones is found before the lock:
         * the lock is only for the frames that changed, and the record. */
        if (!g_python_gone) {
            if (!(known & MT_FAST_PY_CHANGED) && c->py_depth &&
                mt_python_unchanged(c->py, c->py_depth, &c->py_key))
                depth = py_same = c->py_depth; /* c->py_scratch is not read then */
            else if ((depth = capture_python(c)) != 0)
                py_same = python_common(c, c->py_scratch, depth);
        }
        if (n_ips) {
            nat_same = from_unw && c->nat_is_unw && c->nat_depth == n_ips
                           ? n_ips
                           : native_common(c, c->scratch, n_ips);
        }
        int py_known = !depth || (py_same == depth && depth == c->py_depth);
        int nat_known = !n_ips || (nat_same == n_ips && n_ips == c->nat_depth);
        mt_ring *r;
        if (py_known && nat_known && event_fits(size, allocator) && ring_ok() &&
            (r = thread_ring(c)) != NULL) {
            if (ring_record(r, (uintptr_t)addr, event_kind(size, allocator, 0), t_thread, 1,
                          depth ? c->py_nodes[depth - 1] : 0,
                          n_ips ? c->nat_nodes[n_ips - 1] : 0) != 0) {
                if (n_ips) c->nat_is_unw = from_unw && c->nat_depth == n_ips;
                mt_guard = 0;
                *err = saved_errno;
                return;
            }
        }
    }
    lock();
    if (mt_tracking) {
        direct_begin_locked((uintptr_t)addr);
        /* The first record after a quiet spell is stamped at once, so times (the peak's
         * included) are exact to the clock rather than to the idle tick period. */
        if (g_rings_on ? g_rs.quiet : g_records_since_tick == 0) {
            g_rs.quiet = 0;
            maybe_tick_locked(now_ns(), 1);
        }
        uint32_t thread = thread_index_locked();
        uint32_t py = !depth ? 0
                      : py_same == depth && depth == c->py_depth
                          ? c->py_nodes[depth - 1]
                          : intern_python_locked(c, c->py_scratch, depth, py_same);
        uint32_t nat = !n_ips ? 0
                       : nat_same == n_ips && n_ips == c->nat_depth
                           ? c->nat_nodes[n_ips - 1]
                           : intern_native_locked(c, c->scratch, n_ips, nat_same);
        if (n_ips) c->nat_is_unw = from_unw && c->nat_depth == n_ips;
        if (UNLIKELY(mt_sample_mean)) {
            uint8_t *p = reserve(48);
            if (p) {
                commit(encode_sampled_alloc_locked(p, addr, size, allocator, thread, py, nat));
                maybe_flush_inline_locked();
            }
        } else {
            encode_alloc_locked((uintptr_t)addr, size, allocator, thread, py, nat);
        }
        direct_end_locked();
    }
    unlock();
    mt_guard = 0;
    *err = saved_errno;
}

void mt_record_alloc(void *addr, size_t size, int allocator, uintptr_t ra, uintptr_t cfa) {
    int known = record_alloc_fast(addr, size, allocator, ra, cfa);
    if (known != MT_FAST_DONE) record_alloc(addr, size, allocator, ra, cfa, known);
}

static __attribute__((noinline)) int record_free(void *addr, size_t size, int allocator) {
    int *err = errno_ptr(), saved_errno = *err;
    int recorded = 0;
    uint64_t ordinal = 0;
    mt_guard = 1;
    stack_cache *c;
    mt_ring *r;
    if (event_fits(size, allocator) && ring_ok() && (c = t_cache) != NULL &&
        (r = thread_ring(c)) != NULL) {
        int pushed = ring_record(r, (uintptr_t)addr, event_kind(size, allocator, MT_EVENT_FREE),
                               t_thread, 0, 0, 0);
        if (pushed != 0) {
            mt_guard = 0;
            *err = saved_errno;
            return pushed > 0;
        }
    }
    lock();
    /* Sampling: only the free of a sampled address is sent (munmap always is). */
    int by_ordinal = mt_sample_mean && allocator != MT_MUNMAP;
    if (mt_tracking && (!by_ordinal || mt_sampler_remove((uintptr_t)addr, &ordinal))) {
        recorded = 1;
        direct_begin_locked((uintptr_t)addr);
        uint32_t thread = thread_index_locked();
        encode_free_locked((uintptr_t)addr, by_ordinal, ordinal, size, allocator, thread);
        maybe_flush_inline_locked();
        direct_end_locked();
    }
    unlock();
    mt_guard = 0;
    *err = saved_errno;
    return recorded;
}

/* A FREE from a thread with a ring, as record_alloc_fast: guarded, no errno to keep. */
int mt_record_free(void *addr, size_t size, int allocator) {
    stack_cache *c = t_cache;
    mt_ring *r;
    if (LIKELY(c != NULL) && (r = c->ring) != NULL && event_fits(size, allocator) && ring_ok()) {
        mt_guard = 1;
        int pushed = ring_record(r, (uintptr_t)addr, event_kind(size, allocator, MT_EVENT_FREE),
                               t_thread, 0, 0, 0);
        mt_guard = 0;
        if (pushed != 0) return pushed > 0;
    }
    return record_free(addr, size, allocator);
}

/* ---- memory maps -------------------------------------------------------------------- */

/* One loaded object of a snapshot: its load base, its program headers (with the base, which
 * object it is while none is unloaded) and where its encoded entry is. */
typedef struct {
    uintptr_t base;
    const void *phdr;
    size_t off, len;
    uintptr_t lo, hi; /* the addresses its PT_LOAD segments span */
    int sent;         /* lazy maps (g_maps_lazy): the reader's snapshot holds it */
} maps_entry;

typedef struct {
    uint8_t *data;
    size_t len, cap;
    int count;
    maps_entry *ent; /* count of them, in dl_iterate_phdr order until sorted by base */
    int ent_cap;
    unsigned long long subs; /* the loader's count of unloads when it was taken (~0: unknown) */
} grow_buf;

/* The snapshot sent last (MAPS or MAPS_DELTA), kept to send only what changed. */
static grow_buf g_maps_sent;
static int g_maps_sent_valid;

static uint8_t *grow(grow_buf *g, size_t n) {
    if (g->len + n > g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16384;
        while (cap < g->len + n) cap *= 2;
        uint8_t *d = realloc(g->data, cap);
        if (!d) return NULL;
        g->data = d;
        g->cap = cap;
    }
    return g->data + g->len;
}

static int skip_object(const char *name) {
    return strstr(name, "linux-vdso") != NULL || strstr(name, "linux-gate") != NULL;
}

static size_t build_id_hex(struct dl_phdr_info *info, char *out, size_t cap) {
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
        const uint8_t *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            const uint8_t *name = p + sizeof(ElfW(Nhdr));
            const uint8_t *desc = name + ((nh->n_namesz + 3) & ~3u);
            if (desc + nh->n_descsz > end) break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                static const char hex[] = "0123456789abcdef";
                size_t w = 0;
                for (uint32_t k = 0; k < nh->n_descsz && w + 2 < cap; k++) {
                    out[w++] = hex[desc[k] >> 4];
                    out[w++] = hex[desc[k] & 15];
                }
                return w;
            }
            p = desc + ((nh->n_descsz + 3) & ~3u);
        }
    }
    return 0;
}

/* The object's entry in the snapshot sent last, when it is surely the same object: nothing
 * was unloaded since (an object loaded where an unloaded one was would have its base and
 * its program headers' address). Its entry is copied, not encoded again: a pass runs at
 * every dlopen with native stacks and went through every loaded object's notes for its
 * build-id (pandas' import: 84 passes over ~180 objects, 10.7 M instructions). */
static const maps_entry *sent_entry(const struct dl_phdr_info *info, unsigned long long subs) {
    if (subs == ~0ULL || subs != g_maps_sent.subs) return NULL;
    int lo = 0, hi = g_maps_sent.count;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        const maps_entry *e = &g_maps_sent.ent[mid];
        if (e->base < info->dlpi_addr) {
            lo = mid + 1;
        } else if (e->base > info->dlpi_addr) {
            hi = mid;
        } else {
            return e->phdr == (const void *)info->dlpi_phdr ? e : NULL;
        }
    }
    return NULL;
}

/* Whether a MAPS entry lists this program header: every PT_LOAD segment, or with lazy
 * maps (g_maps_lazy) the executable ones only. */
static inline int sends_segment(const ElfW(Phdr) *ph) {
    return ph->p_type == PT_LOAD && (!g_maps_lazy || (ph->p_flags & PF_X));
}

/* The addresses an object's PT_LOAD segments span, [*lo, *hi). */
static void load_span(const struct dl_phdr_info *info, uintptr_t *lo, uintptr_t *hi) {
    uintptr_t l = UINTPTR_MAX, h = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t s = info->dlpi_addr + ph->p_vaddr;
        if (s < l) l = s;
        if (s + ph->p_memsz > h) h = s + ph->p_memsz;
    }
    *lo = l;
    *hi = h;
}

static int maps_callback(struct dl_phdr_info *info, size_t size, void *data) {
    grow_buf *g = data;
    unsigned long long subs =
        size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs
            ? info->dlpi_subs
            : ~0ULL;
    g->subs = subs;
    const maps_entry *was = sent_entry(info, subs);
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (!was && skip_object(name)) return 0;
    if (g->count == g->ent_cap) {
        int cap = g->ent_cap ? g->ent_cap * 2 : 256;
        maps_entry *e = realloc(g->ent, (size_t)cap * sizeof *e);
        if (!e) return 1;
        g->ent = e;
        g->ent_cap = cap;
    }
    if (was) {
        uint8_t *p = grow(g, was->len);
        if (!p) return 1;
        memcpy(p, g_maps_sent.data + was->off, was->len);
        g->ent[g->count++] = (maps_entry){info->dlpi_addr, info->dlpi_phdr, g->len, was->len,
                                          was->lo, was->hi, 0};
        g->len += was->len;
        return 0;
    }
    if (name[0] == 0) name = g_exe;
    size_t nlen = strlen(name);
    char bid[128];
    size_t blen = build_id_hex(info, bid, sizeof bid);
    /* Lazy maps list only the executable segments: a return address lies in no other, and
     * the others were a third of a sampled capture's maps (numpy's benchmark 0.44 KB). */
    int nload = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) nload += sends_segment(&info->dlpi_phdr[i]);
    uint8_t *p = grow(g, 64 + nlen + blen + (size_t)nload * 40);
    if (!p) return 1;
    uintptr_t lo, hi;
    load_span(info, &lo, &hi);
    g->ent[g->count] = (maps_entry){info->dlpi_addr, info->dlpi_phdr, g->len, 0, lo, hi, 0};
    p = mp_array(p, 4);
    p = mp_str(p, name, (uint32_t)nlen);
    p = mp_uint(p, info->dlpi_addr);
    p = blen ? mp_str(p, bid, (uint32_t)blen) : mp_nil(p);
    p = mp_array(p, (uint32_t)nload);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (!sends_segment(ph)) continue;
        p = mp_array(p, 4);
        p = mp_uint(p, ph->p_vaddr);
        p = mp_uint(p, ph->p_memsz);
        p = mp_uint(p, ph->p_flags);
        p = mp_uint(p, ph->p_offset);
    }
    size_t len = (size_t)(p - g->data);
    g->ent[g->count].len = len - g->len;
    g->len = len;
    g->count++;
    return 0;
}

static void grow_free(grow_buf *g) {
    free(g->data);
    free(g->ent);
    *g = (grow_buf){0};
}

static int by_base(const void *a, const void *b) {
    uintptr_t x = ((const maps_entry *)a)->base, y = ((const maps_entry *)b)->base;
    return x < y ? -1 : x > y;
}

/* Sort a snapshot's entries by load base; 0 when two share one (a delta could not say which
 * of them went). */
static int sort_unique(grow_buf *g) {
    qsort(g->ent, (size_t)g->count, sizeof *g->ent, by_base);
    for (int i = 1; i < g->count; i++)
        if (g->ent[i].base == g->ent[i - 1].base) return 0;
    return 1;
}

static int same_entry(const grow_buf *a, const maps_entry *x, const grow_buf *b,
                      const maps_entry *y) {
    return x->len == y->len && memcmp(a->data + x->off, b->data + y->off, x->len) == 0;
}

static int emit_full_maps(const grow_buf *g) {
    uint8_t *p = reserve(16 + g->len);
    if (!p) return 0;
    p = mp_array(p, 2);
    p = mp_uint(p, MT_REC_MAPS);
    p = mp_array(p, (uint32_t)g->count);
    memcpy(p, g->data, g->len);
    commit(p + g->len);
    return 1;
}

/* MAPS_DELTA from the snapshot sent last to G (both sorted by unique base): the bases of
 * the objects gone or changed, then the entries of the objects new or changed. Nothing
 * when nothing changed. 0 when it could not be sent. */
static int emit_maps_delta(const grow_buf *old, const grow_buf *g) {
    size_t added_len = 0;
    int removed = 0, added = 0;
    for (int i = 0, j = 0; i < old->count || j < g->count;) {
        const maps_entry *x = i < old->count ? &old->ent[i] : NULL;
        const maps_entry *y = j < g->count ? &g->ent[j] : NULL;
        if (x && y && x->base == y->base) {
            if (!same_entry(old, x, g, y)) removed++, added++, added_len += y->len;
            i++, j++;
        } else if (x && (!y || x->base < y->base)) {
            removed++, i++;
        } else {
            added++, added_len += y->len, j++;
        }
    }
    if (!removed && !added) return 1;
    if (removed) g_summary_ok = 0;
    uint8_t *p = reserve(32 + (size_t)removed * 9 + added_len);
    if (!p) return 0;
    p = mp_array(p, 3);
    p = mp_uint(p, MT_REC_MAPS_DELTA);
    p = mp_array(p, (uint32_t)removed);
    for (int i = 0, j = 0; i < old->count; i++) {
        const maps_entry *x = &old->ent[i];
        while (j < g->count && g->ent[j].base < x->base) j++;
        if (j == g->count || g->ent[j].base != x->base || !same_entry(old, x, g, &g->ent[j]))
            p = mp_uint(p, x->base);
    }
    p = mp_array(p, (uint32_t)added);
    for (int i = 0, j = 0; j < g->count; j++) {
        const maps_entry *y = &g->ent[j];
        while (i < old->count && old->ent[i].base < y->base) i++;
        if (i == old->count || old->ent[i].base != y->base || !same_entry(old, &old->ent[i], g, y)) {
            memcpy(p, g->data + y->off, y->len);
            p += y->len;
        }
    }
    commit(p);
    return 1;
}


/* ---- lazy maps (g_maps_lazy) -------------------------------------------------------- */

/* Return addresses of new nodes whose object was not in the snapshot (a node made inside a
 * dlopen, before the pass that follows it): looked up again at the next pass. */
#define MT_MAPS_PENDING 256
static uintptr_t g_maps_pending[MT_MAPS_PENDING];
static int g_n_pending, g_pending_overflow;
static int g_maps_last_hit = -1;

/* The entry of G whose segments span the call before return address IP, or NULL. */
static maps_entry *maps_find(grow_buf *g, uintptr_t ip) {
    uintptr_t a = ip - 1;
    if (g_maps_last_hit >= 0 && g_maps_last_hit < g->count) {
        maps_entry *e = &g->ent[g_maps_last_hit];
        if (a >= e->lo && a < e->hi) return e;
    }
    for (int i = 0; i < g->count; i++) {
        maps_entry *e = &g->ent[i];
        if (a >= e->lo && a < e->hi) {
            g_maps_last_hit = i;
            return e;
        }
    }
    return NULL;
}

/* Whether the reader's snapshot (the sent entries) names each object by a load base of its
 * own: a MAPS_DELTA can then take one back. */
static int sent_bases_unique(const grow_buf *g) {
    int have = 0;
    uintptr_t last = 0;
    for (int i = 0; i < g->count; i++) {
        if (!g->ent[i].sent) continue;
        if (have && g->ent[i].base == last) return 0;
        have = 1;
        last = g->ent[i].base;
    }
    return 1;
}

/* A full MAPS of the sent entries of G (the reader's whole snapshot). */
static int emit_sent_maps(const grow_buf *g) {
    size_t len = 0;
    uint32_t n = 0;
    for (int i = 0; i < g->count; i++)
        if (g->ent[i].sent) len += g->ent[i].len, n++;
    uint8_t *p = reserve(16 + len);
    if (!p) return 0;
    p = mp_array(p, 2);
    p = mp_uint(p, MT_REC_MAPS);
    p = mp_array(p, n);
    for (int i = 0; i < g->count; i++) {
        if (!g->ent[i].sent) continue;
        memcpy(p, g->data + g->ent[i].off, g->ent[i].len);
        p += g->ent[i].len;
    }
    commit(p);
    return 1;
}

/* Send entry E of the current snapshot (g_maps_sent): a MAPS_DELTA that adds it. */
static void maps_send_entry_locked(maps_entry *e) {
    e->sent = 1;
    uint8_t *p = reserve(16 + e->len);
    if (!p) return;
    p = mp_array(p, 3);
    p = mp_uint(p, MT_REC_MAPS_DELTA);
    p = mp_array(p, 0);
    p = mp_array(p, 1);
    memcpy(p, g_maps_sent.data + e->off, e->len);
    commit(p + e->len);
}

/* A new native node's return address: its object goes to the reader first, once. */
static void maps_need_locked(uintptr_t ip) {
    maps_entry *e = maps_find(&g_maps_sent, ip);
    if (e) {
        if (!e->sent) maps_send_entry_locked(e);
    } else if (g_n_pending < MT_MAPS_PENDING) {
        g_maps_pending[g_n_pending++] = ip;
    } else {
        g_pending_overflow = 1;
    }
}

/* The entry of G that is OLD's entry X (same load base, same encoding), or NULL. */
static maps_entry *same_in(grow_buf *g, const grow_buf *old, const maps_entry *x) {
    int lo = 0, hi = g->count;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (g->ent[mid].base < x->base) lo = mid + 1; else hi = mid;
    }
    for (; lo < g->count && g->ent[lo].base == x->base; lo++)
        if (same_entry(old, x, g, &g->ent[lo])) return &g->ent[lo];
    return NULL;
}

/* A pass of lazy maps: the new snapshot G (sorted) replaces the one kept; sent objects that
 * are gone are taken back (a MAPS_DELTA of their bases, or a full MAPS of what is left when
 * two sent objects share a base); then the objects of pending addresses are sent. FULL: the
 * first pass, an empty MAPS. */
static void emit_maps_lazy_locked(grow_buf *g, int full, int unique) {
    size_t gone = 0;
    int left = 0;
    if (full) {
        uint8_t *p = reserve(8);
        if (p) {
            p = mp_array(p, 2);
            p = mp_uint(p, MT_REC_MAPS);
            p = mp_array(p, 0);
            commit(p);
        }
    } else {
        for (int i = 0; i < g_maps_sent.count; i++) {
            const maps_entry *x = &g_maps_sent.ent[i];
            maps_entry *y = same_in(g, &g_maps_sent, x);
            if (!y) left = 1;
            if (!x->sent) continue;
            if (y) y->sent = 1; else gone++;
        }
    }
    if (left) g_summary_ok = 0; /* an object left the maps */
    if (gone) {
        if (sent_bases_unique(&g_maps_sent)) {
            uint8_t *p = reserve(16 + gone * 9);
            if (p) {
                p = mp_array(p, 3);
                p = mp_uint(p, MT_REC_MAPS_DELTA);
                p = mp_array(p, (uint32_t)gone);
                for (int i = 0; i < g_maps_sent.count; i++) {
                    const maps_entry *x = &g_maps_sent.ent[i];
                    if (x->sent && !same_in(g, &g_maps_sent, x)) p = mp_uint(p, x->base);
                }
                p = mp_array(p, 0);
                commit(p);
            }
        } else {
            emit_sent_maps(g);
        }
    }
    grow_free(&g_maps_sent);
    g_maps_sent = *g;
    g_maps_sent_valid = unique;
    g_maps_last_hit = -1;
    if (g_pending_overflow) { /* too many to remember: every object goes */
        for (int i = 0; i < g_maps_sent.count; i++)
            if (!g_maps_sent.ent[i].sent) maps_send_entry_locked(&g_maps_sent.ent[i]);
    } else {
        for (int i = 0; i < g_n_pending; i++) {
            maps_entry *e = maps_find(&g_maps_sent, g_maps_pending[i]);
            if (e && !e->sent) maps_send_entry_locked(e);
        }
    }
    g_n_pending = g_pending_overflow = 0;
}

/* The loaded objects: a full MAPS at start (FULL), else only what changed since the
 * snapshot sent last (docs/FORMAT.md: MAPS_DELTA); with lazy maps, see above. */
static void emit_maps_locked(int full) {
    grow_buf g = {0};
    if (dl_iterate_phdr(maps_callback, &g) != 0) { /* out of memory: send nothing */
        grow_free(&g);
        g_summary_ok = 0;
        return;
    }
    int unique = sort_unique(&g);
    if (g_maps_lazy) {
        emit_maps_lazy_locked(&g, full, unique);
        return;
    }
    int delta = !full && g_maps_sent_valid && unique;
    if (!full && !delta) g_summary_ok = 0; /* a full MAPS later on may drop objects */
    int sent = delta ? emit_maps_delta(&g_maps_sent, &g) : emit_full_maps(&g);
    if (!sent) g_summary_ok = 0;
    grow_free(&g_maps_sent);
    g_maps_sent = g;
    g_maps_sent_valid = unique && sent; /* else the next one is full again */
}

void mt_record_maps(void) {
    int saved = mt_guard;
    mt_guard = 1;
    lock();
    if (mt_tracking && g_send_maps) emit_maps_locked(0);
    unlock();
    mt_guard = saved;
}

static int self_callback(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    uintptr_t base = (uintptr_t)data;
    if (info->dlpi_addr != base) return 0;
    load_span(info, &g_self_lo, &g_self_hi);
    return 1;
}

/* ---- writer thread ------------------------------------------------------------------ */

static uint64_t read_rss(void) {
    if (g_statm_fd < 0) return 0;
    char buf[128];
    ssize_t n = pread(g_statm_fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *p = buf;
    while (*p && *p != ' ') p++;
    uint64_t pages = strtoull(p, NULL, 10);
    return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void maybe_tick_locked(uint64_t now, int first_of_burst) {
    uint64_t since = now - g_last_tick_ns;
    if (since < g_tick_busy_ns && first_of_burst != MT_TICK_AT_END) return;
    if (!first_of_burst && g_records_since_tick == 0 && since < MT_TICK_IDLE_NS) return;
    /* Never wait for room: the writer calls this, and it is the one that makes room. */
    if (!g_running || g_failed || g_active.len + 48 > g_active.cap) return;
    uint8_t *p = g_active.data + g_active.len;
    long untraced = g_untraced_children;  /* so far; only once there is one (FORMAT.md) */
    p = mp_array(p, untraced > 0 ? 4 : 3);
    p = mp_uint(p, MT_REC_TICK);
    p = mp_uint(p, (now - g_start_ns) / 1000);
    p = mp_uint(p, read_rss());
    if (untraced > 0) p = mp_uint(p, (uint64_t)untraced);
    commit(p);
    g_last_tick_ns = now;
    g_records_since_tick = 0;
}

static int write_all(int fd, const uint8_t *data, size_t len) {
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Write a buffer to the output: a live pipe at once, a capture file through its writer
 * (which flushes by its own policy); end=1 ends the capture (its frame, written out). */
static int emit_out(const uint8_t *data, size_t len, int end) {
    if (!g_compress) return len ? write_all(g_fd, data, len) : 0;
    if (mt_capture_write(&g_capture, data, len) < 0) return -1;
    return end ? mt_capture_finish(&g_capture) : 0;
}

/* Inline writing (g_inline): the active buffer to the output now, on this thread, lock
 * held; end=1 closes the compressed frame. A failed write stops tracing (the hooks stay,
 * passing calls through, until stop removes them). The program's errno is kept. */
static void flush_inline_locked(int end) {
    int *err = errno_ptr(), saved = *err;
    if (!g_failed && emit_out(g_active.data, g_active.len, end) < 0) {
        g_failed = 1;
        mt_tracking = 0;
    }
    g_active.len = 0;
    *err = saved;
}

/* After a record, inline writing: a TICK and a flush once a tick period has passed since
 * the last such turn (flushes of a full buffer in between do not count). */
static inline void maybe_flush_inline_locked(void) {
    if (LIKELY(!g_inline)) return;
    uint64_t coarse = coarse_ns();
    if (coarse - g_last_flush_coarse_ns < g_tick_busy_ns) return;
    uint64_t now = now_ns();
    if (now - g_last_flush_ns < g_tick_busy_ns) return;
    if (g_active.len + 48 > g_active.cap) flush_inline_locked(0); /* room for the TICK */
    maybe_tick_locked(now, 0);
    flush_inline_locked(0);
    g_last_flush_ns = now;
    g_last_flush_coarse_ns = coarse;
}

/* The writer's turn (lock held): the threads' waiting records into the stream, as many as
 * fit, then a TICK once none waits. No records since the last TICK, a tick period ago: a
 * quiet spell, whose end the next record stamps at once. */
static void writer_turn_locked(uint64_t now) {
    if (!drain_writer_locked()) return;
    if (g_rings_on && g_records_since_tick == 0 && now - g_last_tick_ns >= g_tick_busy_ns)
        g_rs.quiet = 1;
    maybe_tick_locked(now, 0);
}

static void *writer_main(void *arg) {
    (void)arg;
    mt_guard = 1;
    int rc = 0;
    lock();
    for (;;) {
        /* A TICK at every turn, busy or not (non-blocking: see maybe_tick_locked). */
        if (!g_stop_requested && mt_tracking) writer_turn_locked(now_ns());
        if (!g_spare_busy) {
            if (!g_stop_requested) {
                wait_locked(&g_wake_seq, g_wake_seq, 10000000ULL);
                if (!g_stop_requested && mt_tracking) writer_turn_locked(now_ns());
            }
            if (!g_spare_busy && g_active.len > 0) {
                mt_buf t = g_active;
                g_active = g_spare;
                g_spare = t;
                g_spare_busy = 1;
            }
        }
        if (g_spare_busy) {
            const uint8_t *data = g_spare.data;
            size_t len = g_spare.len;
            unlock();
            rc = emit_out(data, len, 0);
            lock();
            g_spare.len = 0;
            g_spare_busy = 0;
            wake_producers_locked();
        } else if (g_stop_requested && g_active.len == 0) {
            break;
        } else if (g_compress && mt_capture_flush_due(&g_capture)) {
            /* Idle: what the file does not show yet goes out once its time is up. */
            unlock();
            rc = mt_capture_flush(&g_capture);
            lock();
        }
        if (rc < 0) {
            /* The reader is gone (or the disk full): stop tracing, the program runs on. */
            g_failed = 1;
            mt_tracking = 0;
            g_active.len = 0;
            wake_producers_locked();
            break;
        }
    }
    unlock();
    if (rc == 0 && g_compress) emit_out(NULL, 0, 1);
    if (rc < 0) mt_hooks_uninstall();
    return NULL;
}

/* ---- fork --------------------------------------------------------------------------- */

static void atfork_prepare(void) { lock(); }
static void atfork_parent(void) { unlock(); }
static void atfork_child(void) {
    /* The child must never write into the parent's stream: tracing stops here, quietly. */
    mt_tracking = 0;
    g_summary_ok = 0; /* the parent's recording: not the child's to name */
    g_lock = 0; /* held by the forking thread, the child's only one */
    g_space_waiters = 0;
    /* The parent's threads' rings: not the child's (its own records go under the lock). */
    g_n_rings = g_dead_rings = 0;
    g_rings_on = 0;
    g_rs.pack = g_pack_live = 0;
    /* The parent's threads' maps: copies the child's threads never use (left in place, as
     * those rings); the forking thread's own stays listed. */
    g_n_memos = 0;
    if (t_cache != NULL && t_cache->memo != NULL) g_memos[g_n_memos++] = t_cache->memo;
    g_drain_busy = g_drain_waiters = 0;
    if (t_cache != NULL) t_cache->ring = NULL;
    if (g_running) {
        if (g_fd >= 0) close(g_fd);
        if (g_statm_fd >= 0) close(g_statm_fd);
        g_fd = -1;
        g_statm_fd = -1;
        g_running = 0;
        g_active.len = 0;
        g_spare.len = 0;
        g_spare_busy = 0;
    }
}

/* ---- start / stop ------------------------------------------------------------------- */

/* The two buffers (lock held, nothing running): 2 MiB once a busy recording has filled
 * them, which a program left running after a detach has no use for; a start makes them
 * again. */
static void release_buffers(void) {
    buf_drop(&g_active);
    buf_drop(&g_spare);
}

int mt_recorder_start(int fd, int native, int native_depth, int compress, const char *header,
                      size_t header_len, uint64_t sample_mean, uint64_t sample_seed) {
    int saved = mt_guard;
    mt_guard = 1;
    lock();
    if (g_running) {
        unlock();
        mt_guard = saved;
        return MT_START_RUNNING;
    }
    if (!g_atfork_registered) {
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
        g_atfork_registered = 1;
    }
    mt_table_free(&g_codes);
    mt_table_free(&g_pynodes);
    mt_table_free(&g_natnodes);
    mt_table_free(&g_alloc_ctxs);
    if (mt_table_init(&g_codes, 4096) || mt_table_init(&g_pynodes, 65536) ||
        mt_table_init(&g_natnodes, native ? 65536 : 1024) ||
        mt_table_init(&g_alloc_ctxs, sample_mean ? 1024 : 16)) {
        unlock();
        mt_guard = saved;
        return MT_START_NOMEM;
    }
    if (!g_active.data) g_active = buf_make(MT_BUF_CAP);
    if (!g_spare.data) g_spare = buf_make(MT_BUF_CAP);
    if (!g_active.data || !g_spare.data) {
        release_buffers();
        unlock();
        mt_guard = saved;
        return MT_START_NOMEM;
    }
    if (mt_sampler_start(sample_mean, sample_seed) != 0) {
        unlock();
        mt_guard = saved;
        return MT_START_NOMEM;
    }
    g_next_code = g_next_pynode = g_next_natnode = g_next_thread = 0;
    g_last_pynode_sent = g_last_natnode_sent = 0;
    g_last_addr = 0;
    g_sample_ordinal = 0;
    g_full_allocs = 0;
    memset(&g_ctx, 0, sizeof g_ctx);
    g_generation++;
    for (int i = 0; i < g_n_names; i++) g_names[i].index = 0;
    g_active.len = g_spare.len = 0;
    g_spare_busy = 0;
    for (size_t i = 0; i < g_n_rings; i++) { /* records left by a past run */
        mt_ring *r = g_rings[i];
        __atomic_store_n(&r->head, ring_tail(r), __ATOMIC_RELEASE);
        r->pk_len = r->pk_head = r->pk_bin = 0;
        r->pk_known = 0;
        r->pk_epoch++;
    }
    if (!g_page) {
        long page = sysconf(_SC_PAGESIZE);
        g_page = page >= 64 && (page & (page - 1)) == 0 ? (size_t)page : 4096;
        g_ring_bytes = (sizeof(mt_ring) + g_page - 1) & ~(g_page - 1);
    }
    /* Each lane's numbers go on from where they are: a push that straddled this start has
     * one below its lane's next and goes as it comes (see encode_span). */
    for (unsigned b = 0; b < MT_LANES; b++)
        g_expect[b] = __atomic_load_n(&g_lanes[b].next, __ATOMIC_RELAXED);
    g_rs.quiet = 0;
    g_rings_on = !sample_mean;
    /* Packing while one thread has a ring: rings kept from a past run (threads still
     * alive after a detach) leave it off for this one. */
    g_rs.pack = g_pack_live = g_rings_on && g_n_rings == 0;
    g_packed_bytes = 0;
    g_fd = fd;
    g_native = native;
    g_native_depth = native_depth > 0 ? native_depth : MT_DEFAULT_NATIVE_DEPTH;
    g_python_gone = 0;
    g_compress = 0;
    if (compress && mt_capture_open(&g_capture, fd, 0, 0) == 0) {
        g_compress = 1;
        if (sample_mean) mt_capture_sampled(&g_capture); /* a slow stream: compress harder */
    }
    g_failed = 0;
    g_stop_requested = 0;
    g_start_ns = g_last_tick_ns = now_ns();
    g_tick_busy_ns = sample_mean ? MT_TICK_SAMPLED_BUSY_NS : MT_TICK_BUSY_NS;
    g_inline = sample_mean && g_compress;
    g_last_flush_ns = g_start_ns;
    g_last_flush_coarse_ns = coarse_ns();
    g_records_since_tick = 0;
    g_statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    ssize_t n = readlink("/proc/self/exe", g_exe, sizeof g_exe - 1);
    g_exe[n > 0 ? n : 0] = 0;
    Dl_info info;
    if (dladdr((void *)&mt_record_alloc, &info) && info.dli_fbase)
        dl_iterate_phdr(self_callback, info.dli_fbase);
    if (native) unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    g_running = 1;
    uint8_t *p = reserve(MT_MAGIC_LEN + header_len);
    memcpy(p, MT_MAGIC, MT_MAGIC_LEN);
    memcpy(p + MT_MAGIC_LEN, header, header_len);
    commit(p + MT_MAGIC_LEN + header_len);
    g_send_maps = native || !sample_mean;
    if (g_maps_lazy != (native && sample_mean)) { /* its entries list other segments */
        grow_free(&g_maps_sent);
        g_maps_sent_valid = 0;
    }
    g_maps_lazy = native && sample_mean;
    g_n_pending = g_pending_overflow = 0;
    g_summary_ok = native && g_send_maps;
    if (g_send_maps) emit_maps_locked(1);
    /* The header reaches the file at once: even a program killed in its first milliseconds
     * leaves a capture that says what it was. */
    if (emit_out(g_active.data, g_active.len, 0) == 0 &&
        (!g_compress || mt_capture_flush(&g_capture) == 0))
        g_active.len = 0;

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = g_inline ? 0 : pthread_create(&g_writer, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        g_running = 0;
        unlock();
        mt_guard = saved;
        return MT_START_NO_WRITER;
    }
    mt_tracking = 1;
    unlock();
    mt_guard = saved;
    return MT_START_OK;
}

void mt_set_untraced_children(long n) { g_untraced_children = n; }

void mt_recorder_stop(int exit_code, int has_code) {
    int saved = mt_guard;
    mt_guard = 1;
    lock();
    if (!g_running) {
        unlock();
        mt_guard = saved;
        return;
    }
    mt_tracking = 0;
    /* The threads' waiting records. A push either sees tracking off, or its flag is seen
     * by this drain, which then waits for its record (see ring_push). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    drain_all_locked();
    /* Lazy maps: objects of nodes made since the last pass (inside a dlopen) go out now. */
    if (g_maps_lazy && g_send_maps && !g_failed && (g_n_pending || g_pending_overflow))
        emit_maps_locked(0);
    if (g_inline && !g_failed) maybe_tick_locked(now_ns(), MT_TICK_AT_END);
    if (!g_failed) {
        uint8_t *p = reserve(32);
        if (p) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long children = g_untraced_children;
            p = mp_array(p, children >= 0 ? 4 : 3);
            p = mp_uint(p, MT_REC_TRAILER);
            p = mp_double(p, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
            p = has_code ? mp_int(p, exit_code) : mp_nil(p);
            if (children >= 0) p = mp_int(p, children);
            commit(p);
        }
    }
    g_stop_requested = 1;
    if (g_inline) {
        flush_inline_locked(1);
    } else {
        wake_writer_locked();
        unlock();
        pthread_join(g_writer, NULL);
        lock();
    }
    g_running = 0;
    free_dead_rings_locked(); /* threads that ended while the writer finished */
    for (size_t i = 0; i < g_n_rings; i++) ring_release(g_rings[i]);
    memo_release_all_locked();
    release_buffers();
    /* The interning tables (up to 2 MiB each once filled): the next start makes them again.
     * A record still interning when the stop came (it waited for room with the lock
     * released) finds them empty and sends nothing more. The native one stays for
     * mt_recorder_native_summary, until mt_recorder_release. */
    mt_table_free(&g_codes);
    mt_table_free(&g_pynodes);
    mt_table_free(&g_alloc_ctxs);
    if (g_statm_fd >= 0) close(g_statm_fd);
    g_statm_fd = -1;
    unlock();
    mt_guard = saved;
}

int mt_recorder_failed(void) { return g_failed; }

int mt_recorder_running(void) { return g_running; }

void mt_recorder_python_gone(void) { g_python_gone = 1; }

/* What the last recording's stream says about native frames, from the tables (recorder.h):
 * reading a big capture back for it cost more than naming (0.3 s for 11 M allocations). */
int mt_recorder_native_summary(uint64_t **ips, size_t *n_ips, uint8_t **maps,
                               size_t *maps_len) {
    int saved = mt_guard;
    mt_guard = 1;
    lock();
    int ok = !g_running && g_native && g_summary_ok && !g_failed && g_maps_sent_valid &&
             g_natnodes.slots != NULL;
    *ips = NULL;
    *maps = NULL;
    *n_ips = *maps_len = 0;
    if (ok) {
        /* The addresses, each once (a trie holds one address under many parents). */
        mt_table seen;
        size_t n = 0;
        uint64_t *out = malloc((g_natnodes.count + 1) * sizeof *out);
        uint8_t *m = malloc(16 + g_maps_sent.len);
        ok = out && m && mt_table_init(&seen, g_natnodes.count * 2 + 16) == 0;
        if (ok) {
            for (size_t i = 0; i <= g_natnodes.mask; i++) {
                const mt_slot *slot = &g_natnodes.slots[i];
                if (slot->value && !mt_table_get(&seen, slot->b, 0, 0)) {
                    if (mt_table_put(&seen, slot->b, 0, 0, 1) < 0) {
                        ok = 0;
                        break;
                    }
                    out[n++] = slot->b;
                }
            }
            mt_table_free(&seen);
        }
        if (ok) {
            uint8_t *p = mp_array(m, (uint32_t)g_maps_sent.count);
            memcpy(p, g_maps_sent.data, g_maps_sent.len);
            *maps_len = (size_t)(p - m) + g_maps_sent.len;
            *ips = out;
            *n_ips = n;
            *maps = m;
        } else {
            free(out);
            free(m);
        }
    }
    unlock();
    mt_guard = saved;
    return ok;
}
