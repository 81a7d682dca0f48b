/* Byte sampling (`--sample BYTES`): which allocations are recorded, and which frees matter.
 *
 * Each thread draws the byte distance to its next sample from an exponential distribution
 * with the chosen mean; an allocation that reaches it is recorded (with its real size: the
 * reader weighs it, docs/FORMAT.md) and a new distance is drawn from its end. Because the
 * distribution is memoryless, an allocation of s bytes is recorded with probability
 * 1 - exp(-s/mean) whatever came before it, which is what makes the estimate unbiased and
 * immune to periodic allocation patterns. The fast path is a subtraction and a compare on
 * thread-local state: no lock, no shared cache line.
 *
 * Only sampled addresses are remembered, in a table guarded by the recorder's lock. A free
 * first asks two filters (lock-free reads, one bit per bucket, each bit backed by a count of
 * the sampled addresses in its bucket, kept under the lock): a clear bit proves the address
 * was never sampled, so most frees cost a hash and one load and send nothing.
 * - The first level is static: 512 bits, one cache line at a fixed address, indexed by the
 *   top 9 bits of the address's hash. A free reads it with one load and no dependent one
 *   (the growable filter cost three in a row: its pointer, its size, its bits), before the
 *   hook touches its thread-local state. With few sampled addresses live (a program with
 *   tens of megabytes live has a few dozen at 512 KiB) it answers nearly every free.
 * - The second level, asked only when the first says "maybe", refines the same hash with
 *   more of its bits: sized to what is sampled and live (a few thousand addresses for
 *   gigabytes live at 512 KiB), 4096 bits to start with, four times larger whenever more
 *   than a 32nd of its bits would be set, so a free of an unsampled address takes the lock
 *   (a false "maybe" of both) rarely. Small filters stay in the L1 cache even when the
 *   program streams through memory between its frees (a large, sparse one missed the cache
 *   on a third of the frees of bench_run's malloc/free workload).
 * mmap/munmap are not sampled (system calls, rare, and munmap frees ranges): they are always
 * recorded, exactly. */
#ifndef MEMTRACE_SAMPLER_H
#define MEMTRACE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#define MT_HIDDEN __attribute__((visibility("hidden"))) /* no GOT load on the fast path */

/* What every hook reads and only a start writes, on a cache line of its own: the sampled
 * table's count shared its line, and every sampled allocation and free (tens of thousands
 * a second on bench_run's malloc/free workload) took it from the other cores' caches. */
typedef struct {
    volatile uint64_t epoch; /* mt_sample_epoch */
    volatile uint64_t mean;  /* mt_sample_mean */
    volatile int direct;     /* mt_sample_direct */
} __attribute__((aligned(64))) mt_sample_params;
extern mt_sample_params mt_sample_ro MT_HIDDEN;

/* Mean bytes between samples; 0: exact mode, every allocation is recorded. */
#define mt_sample_mean (mt_sample_ro.mean)
/* Sampling, and malloc, calloc, realloc and free are glibc's: those are patched to hooks
 * that decide before the real call and pass the calls they do not record straight on,
 * unguarded (hooks.c). */
#define mt_sample_direct (mt_sample_ro.direct)
/* A thread's distance to its next sample is stored as mt_sample_epoch + distance. Every
 * start moves the epoch up by MT_SAMPLE_EPOCH_STEP, so a distance drawn in an earlier run
 * reads as negative and is drawn again: the fast path checks "this run, and not reached"
 * with one thread-local load and one compare. Distances stay below MT_SAMPLE_DISTANCE_MAX. */
#define MT_SAMPLE_EPOCH_STEP (1ULL << 48)
#define MT_SAMPLE_DISTANCE_MAX (1ULL << 47)
#define mt_sample_epoch (mt_sample_ro.epoch)
extern __thread uint64_t mt_sample_left __attribute__((tls_model("initial-exec"))) MT_HIDDEN;

/* The first-level filter (see above): bit b is set while a sampled address live hashes to
 * bucket b. Written under the recorder's lock, read by frees without it. All ones while
 * not sampling: a sampled hook kept across runs (a pointer dlsym handed out) then takes
 * its slow path, which records as exact mode does (hooks.c). */
#define MT_SAMPLE_L1_BITS 9
extern uint64_t mt_sample_l1[(1 << MT_SAMPLE_L1_BITS) / 64] MT_HIDDEN;

/* The second-level filter: published whole through mt_sample_filter_now. */
typedef struct {
    int shift;       /* 64 - log2(buckets) */
    uint8_t *counts; /* per bucket, saturating: 255 stays 255 (then only "maybe") */
    uint64_t bits[] __attribute__((aligned(64))); /* per bucket: count > 0; frees read it */
} mt_sample_filter;

extern mt_sample_filter *volatile mt_sample_filter_now MT_HIDDEN;

/* The distance ran out (or was never drawn in this run): 1 when this allocation is sampled. */
int mt_sample_slow(size_t size) MT_HIDDEN;

/* 1 when an allocation of `size` bytes (below 2^63) leaves this run's distance to the next
 * sample unreached: it is taken off, and the allocation is not sampled. 0: ask
 * mt_sample_slow. */
static inline int mt_sample_skip(size_t size) {
    int64_t left = (int64_t)(mt_sample_left - mt_sample_epoch);
    if (__builtin_expect(left > (int64_t)size, 1)) {
        mt_sample_left -= size;
        return 1;
    }
    return 0;
}

/* 1 when an allocation of `size` bytes (below 2^63: one that succeeded) is to be recorded
 * (call only while sampling). */
static inline int mt_sample_take(size_t size) {
    return !mt_sample_skip(size) && mt_sample_slow(size);
}

/* Both filters index buckets by the top bits of one multiplicative hash: the second level's
 * buckets split the first level's. */
static inline uint64_t mt_sample_hash(const void *p) {
    return (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ULL;
}

static inline size_t mt_sample_bucket(const mt_sample_filter *f, const void *p) {
    return (size_t)(mt_sample_hash(p) >> f->shift);
}

/* 0 when the first level proves `p` is not a sampled address (call only while sampling).
 * The program's own ordering (a block is freed after its allocation returned) makes the
 * filters' updates, done before the allocation returns, visible here. */
static inline int mt_sample_maybe_l1(const void *p) {
    size_t b = (size_t)(mt_sample_hash(p) >> (64 - MT_SAMPLE_L1_BITS));
    return (__atomic_load_n(&mt_sample_l1[b >> 6], __ATOMIC_RELAXED) >> (b & 63)) & 1;
}

/* 0 when the second level proves it (ask after the first said "maybe"). */
static inline int mt_sample_maybe_l2(const void *p) {
    const mt_sample_filter *f = __atomic_load_n(&mt_sample_filter_now, __ATOMIC_ACQUIRE);
    if (f == NULL) return 0;
    size_t b = mt_sample_bucket(f, p);
    return (__atomic_load_n(&f->bits[b >> 6], __ATOMIC_RELAXED) >> (b & 63)) & 1;
}

/* 0 when `p` is surely not a sampled address (call only while sampling). */
static inline int mt_sample_maybe(const void *p) {
    return mt_sample_maybe_l1(p) && mt_sample_maybe_l2(p);
}

/* Start sampling with this mean (0: exact mode); seed 0 draws from the clock. Returns 0, or
 * -1 when out of memory. Call with the recorder's lock held, before tracing starts. */
int mt_sampler_start(uint64_t mean, uint64_t seed);
/* Remember a sampled address and the ordinal of its ALLOC (recorder's lock held). Returns 0,
 * or 1 + the ordinal it replaces when the address was still there (its free never seen). */
uint64_t mt_sampler_add(uintptr_t addr, uint64_t ordinal);
/* Forget a sampled address: 1 if it was one, its ALLOC's ordinal in *ordinal (recorder's
 * lock held). */
int mt_sampler_remove(uintptr_t addr, uint64_t *ordinal);

#endif
