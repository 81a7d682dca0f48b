/* Byte sampling: distances, the sampled-address table and its filter (see sampler.h). */
#define _GNU_SOURCE
#include "sampler.h"
#include "hooks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FILTER_MIN_SHIFT 12 /* second level: 4096 buckets to start with, 512 bytes of bits */
#define FILTER_MAX_SHIFT 24
#define FILTER_LOAD 32     /* at most one bucket in FILTER_LOAD holds a sampled address */
#define TABLE_MIN 1024

mt_sample_params mt_sample_ro;
__thread uint64_t mt_sample_left __attribute__((tls_model("initial-exec"))) = 0;
/* The epoch this thread was seeded in (seeding is per run: MEMTRACE_SAMPLE_SEED). */
static __thread uint64_t t_epoch __attribute__((tls_model("initial-exec"))) = 0;
static __thread uint64_t t_rng __attribute__((tls_model("initial-exec"))) = 0;

uint64_t mt_sample_l1[(1 << MT_SAMPLE_L1_BITS) / 64] __attribute__((aligned(64)));
static uint32_t g_l1_counts[1 << MT_SAMPLE_L1_BITS]; /* sampled addresses live per bucket */
mt_sample_filter *volatile mt_sample_filter_now = NULL;

static uint64_t g_seed, g_thread_ordinal;
/* The sampled addresses: open addressing, 0 = empty, backward-shift deletion; beside each,
 * the ordinal its ALLOC was sent with (a FREE names its ALLOC by it: docs/FORMAT.md). */
static uint64_t *g_table, *g_table_ord;
static size_t g_table_mask, g_table_count;
/* Retired filters may still be read by a free that loaded the pointer before the swap: they
 * are never unmapped (each is a quarter of its successor, so they cost at most a third). A
 * retired filter is never updated again: its bits only ever say "maybe" too often. */
static int g_filter_shift;

static inline uint64_t splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static inline uint64_t next_random(void) {
    /* xorshift64*: t_rng is never 0 once seeded */
    uint64_t x = t_rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t_rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t draw_distance(void) {
    double u = (double)((next_random() >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
    double d = ceil(-log(u) * (double)mt_sample_mean);
    if (d < 1.0) return 1;
    if (d >= (double)MT_SAMPLE_DISTANCE_MAX) return MT_SAMPLE_DISTANCE_MAX - 1;
    return (uint64_t)d;
}

int mt_sample_slow(size_t size) {
    uint64_t epoch = mt_sample_epoch;
    if (t_epoch != epoch) {
        /* This thread's first allocation in this run: seed it and draw its first distance. */
        uint64_t ordinal = __atomic_fetch_add(&g_thread_ordinal, 1, __ATOMIC_RELAXED);
        uint64_t seed = g_seed ? g_seed + ordinal
                               : (uint64_t)syscall(SYS_gettid) ^ (uint64_t)(uintptr_t)&t_rng;
        if (!g_seed) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            seed ^= (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)ts.tv_sec;
        }
        t_rng = splitmix(seed) | 1;
        t_epoch = epoch;
        uint64_t d = draw_distance();
        if (d > size) {
            mt_sample_left = epoch + d - size;
            return 0;
        }
    }
    /* Reached: a new distance from the end of this allocation (memoryless, so the next
     * allocation is sampled with the same probability whatever this one was). */
    mt_sample_left = epoch + draw_distance();
    return 1;
}

/* ---- the filter ---------------------------------------------------------------------- */

static size_t filter_buckets(int shift) { return (size_t)1 << (64 - shift); }

static mt_sample_filter *new_filter(int shift) {
    size_t n = filter_buckets(shift);
    size_t size = sizeof(mt_sample_filter) + n / 8 + n; /* header, bits, counts */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    mt_sample_filter *f = p;
    f->shift = shift;
    f->counts = (uint8_t *)f->bits + n / 8;
    return f;
}

/* The bit of a bucket changes when its count leaves or reaches 0 (one writer: the lock). */
static inline void set_bit(mt_sample_filter *f, size_t b, int on) {
    uint64_t w = f->bits[b >> 6], m = 1ULL << (b & 63);
    __atomic_store_n(&f->bits[b >> 6], on ? w | m : w & ~m, __ATOMIC_RELAXED);
}

static inline size_t l1_bucket(uintptr_t addr) {
    return (size_t)(mt_sample_hash((const void *)addr) >> (64 - MT_SAMPLE_L1_BITS));
}

static inline void l1_set(size_t b, int on) {
    uint64_t w = mt_sample_l1[b >> 6], m = 1ULL << (b & 63);
    __atomic_store_n(&mt_sample_l1[b >> 6], on ? w | m : w & ~m, __ATOMIC_RELAXED);
}

static inline void l1_inc(uintptr_t addr) {
    size_t b = l1_bucket(addr);
    if (g_l1_counts[b]++ == 0) l1_set(b, 1);
}

static inline void l1_dec(uintptr_t addr) {
    size_t b = l1_bucket(addr);
    if (g_l1_counts[b] > 0 && --g_l1_counts[b] == 0) l1_set(b, 0);
}

static inline void filter_inc(mt_sample_filter *f, uintptr_t addr) {
    size_t b = mt_sample_bucket(f, (const void *)addr);
    uint8_t *c = &f->counts[b];
    if (*c == 0) set_bit(f, b, 1);
    if (*c < 255) (*c)++;
}

static inline void filter_dec(mt_sample_filter *f, uintptr_t addr) {
    size_t b = mt_sample_bucket(f, (const void *)addr);
    uint8_t *c = &f->counts[b];
    if (*c < 255 && *c > 0 && --(*c) == 0) set_bit(f, b, 0);
}

/* More sampled addresses live than a FILTER_LOAD-th of the buckets: a filter four times
 * larger, counted from the table, published whole (a reader sees the old one or the new). */
static void maybe_grow_filter(void) {
    if (g_filter_shift <= 64 - FILTER_MAX_SHIFT) return;
    if (g_table_count <= filter_buckets(g_filter_shift) / FILTER_LOAD) return;
    mt_sample_filter *f = new_filter(g_filter_shift - 2);
    if (f == NULL) return;
    for (size_t i = 0; i <= g_table_mask; i++)
        if (g_table[i]) filter_inc(f, (uintptr_t)g_table[i]);
    g_filter_shift -= 2;
    __atomic_store_n(&mt_sample_filter_now, f, __ATOMIC_RELEASE);
}

/* ---- the table ----------------------------------------------------------------------- */

static inline size_t slot_of(uint64_t addr, size_t mask) {
    return (size_t)((addr * 0x9E3779B97F4A7C15ULL) >> 17) & mask;
}

static int grow_table(void) {
    size_t cap = g_table ? (g_table_mask + 1) * 2 : TABLE_MIN;
    uint64_t *fresh = calloc(cap, sizeof *fresh);
    uint64_t *fresh_ord = calloc(cap, sizeof *fresh_ord);
    if (fresh == NULL || fresh_ord == NULL) {
        free(fresh);
        free(fresh_ord);
        return -1;
    }
    for (size_t i = 0; g_table && i <= g_table_mask; i++) {
        uint64_t a = g_table[i];
        if (!a) continue;
        size_t j = slot_of(a, cap - 1);
        while (fresh[j]) j = (j + 1) & (cap - 1);
        fresh[j] = a;
        fresh_ord[j] = g_table_ord[i];
    }
    free(g_table);
    free(g_table_ord);
    g_table = fresh;
    g_table_ord = fresh_ord;
    g_table_mask = cap - 1;
    return 0;
}

int mt_sampler_start(uint64_t mean, uint64_t seed) {
    g_seed = seed;
    g_thread_ordinal = 0;
    if (g_table) memset(g_table, 0, (g_table_mask + 1) * sizeof *g_table);
    g_table_count = 0;
    memset(mt_sample_l1, mean ? 0 : 0xFF, sizeof mt_sample_l1);
    memset(g_l1_counts, 0, sizeof g_l1_counts);
    if (mean) {
        if (!g_table && grow_table() < 0) return -1;
        mt_sample_filter *f = mt_sample_filter_now;
        if (f == NULL) {
            f = new_filter(64 - FILTER_MIN_SHIFT);
            if (f == NULL) return -1;
            g_filter_shift = f->shift;
        } else {
            memset(f->bits, 0, filter_buckets(f->shift) / 8);
            memset(f->counts, 0, filter_buckets(f->shift));
        }
        __atomic_store_n(&mt_sample_filter_now, f, __ATOMIC_RELEASE);
    }
    mt_sample_epoch += MT_SAMPLE_EPOCH_STEP;
    mt_sample_mean = mean;
    mt_sample_direct = mean && mt_hooks_glibc_allocator;
    return 0;
}

uint64_t mt_sampler_add(uintptr_t addr, uint64_t ordinal) {
    if ((g_table_count + 1) * 2 > g_table_mask + 1 && grow_table() < 0) return 0;
    size_t i = slot_of(addr, g_table_mask);
    while (g_table[i]) {
        if (g_table[i] == addr) { /* already there: its free was never seen */
            uint64_t old = g_table_ord[i];
            g_table_ord[i] = ordinal;
            return old + 1;
        }
        i = (i + 1) & g_table_mask;
    }
    g_table[i] = addr;
    g_table_ord[i] = ordinal;
    g_table_count++;
    l1_inc(addr);
    filter_inc(mt_sample_filter_now, addr);
    maybe_grow_filter();
    return 0;
}

int mt_sampler_remove(uintptr_t addr, uint64_t *ordinal) {
    if (!g_table) return 0;
    size_t i = slot_of(addr, g_table_mask);
    while (g_table[i] != addr) {
        if (!g_table[i]) return 0;
        i = (i + 1) & g_table_mask;
    }
    *ordinal = g_table_ord[i];
    /* Backward-shift deletion: no tombstones, probes stay short under churn. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & g_table_mask;
        if (!g_table[j]) break;
        size_t home = slot_of(g_table[j], g_table_mask);
        if (((j - home) & g_table_mask) >= ((j - i) & g_table_mask)) {
            g_table[i] = g_table[j];
            g_table_ord[i] = g_table_ord[j];
            i = j;
        }
    }
    g_table[i] = 0;
    g_table_count--;
    l1_dec(addr);
    filter_dec(mt_sample_filter_now, addr);
    return 1;
}
