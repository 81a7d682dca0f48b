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
 * first asks a filter (lock-free reads, one bit per bucket): a clear bit proves the address
 * was never sampled, so most frees cost a hash and a load and send nothing. Each bit is
 * backed by a count of the sampled addresses in its bucket, kept under the lock. The filter
 * is sized to what is sampled and live (a few thousand addresses for gigabytes live at
 * 512 KiB): 512 bits to start with, one cache line, four times larger whenever more than a
 * 32nd of its bits would be set. Small, it stays in the L1 cache even when the program
 * streams through memory between its frees (a larger, sparser filter missed the cache on
 * a third of the frees of bench_run's malloc/free workload); sparse, a free of an unsampled
 * address takes the lock (a false "maybe") less than once in 32.
 * mmap/munmap are not sampled (system calls, rare, and munmap frees ranges): they are always
 * recorded, exactly. */
#ifndef MEMTRACE_SAMPLER_H
#define MEMTRACE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#define MT_HIDDEN __attribute__((visibility("hidden"))) /* no GOT load on the fast path */

/* Mean bytes between samples; 0: exact mode, every allocation is recorded. */
extern volatile uint64_t mt_sample_mean MT_HIDDEN;
/* Bumped at every start: a thread's distance drawn in an earlier run is drawn again. */
extern volatile uint32_t mt_sample_gen MT_HIDDEN;
extern __thread uint64_t mt_sample_left __attribute__((tls_model("initial-exec"))) MT_HIDDEN;
extern __thread uint32_t mt_sample_thread_gen __attribute__((tls_model("initial-exec")))
MT_HIDDEN;

typedef struct {
    int shift;       /* 64 - log2(buckets) */
    uint8_t *counts; /* per bucket, saturating: 255 stays 255 (then only "maybe") */
    uint64_t bits[] __attribute__((aligned(64))); /* per bucket: count > 0; frees read it */
} mt_sample_filter;

extern mt_sample_filter *volatile mt_sample_filter_now MT_HIDDEN;

/* The distance ran out (or was never drawn in this run): 1 when this allocation is sampled. */
int mt_sample_slow(size_t size) MT_HIDDEN;

/* 1 when an allocation of `size` bytes is to be recorded (call only while sampling). */
static inline int mt_sample_take(size_t size) {
    if (__builtin_expect(mt_sample_thread_gen == mt_sample_gen && mt_sample_left > size, 1)) {
        mt_sample_left -= size;
        return 0;
    }
    return mt_sample_slow(size);
}

static inline size_t mt_sample_bucket(const mt_sample_filter *f, const void *p) {
    return (size_t)(((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ULL) >> f->shift);
}

/* 0 when `p` is surely not a sampled address (call only while sampling). The program's own
 * ordering (a block is freed after its allocation returned) makes the filter's updates, done
 * before the allocation returns, visible here. */
static inline int mt_sample_maybe(const void *p) {
    const mt_sample_filter *f = __atomic_load_n(&mt_sample_filter_now, __ATOMIC_ACQUIRE);
    if (f == NULL) return 0;
    size_t b = mt_sample_bucket(f, p);
    return (__atomic_load_n(&f->bits[b >> 6], __ATOMIC_RELAXED) >> (b & 63)) & 1;
}

/* Start sampling with this mean (0: exact mode); seed 0 draws from the clock. Returns 0, or
 * -1 when out of memory. Call with the recorder's lock held, before tracing starts. */
int mt_sampler_start(uint64_t mean, uint64_t seed);
/* Remember a sampled address (recorder's lock held). */
void mt_sampler_add(uintptr_t addr);
/* Forget a sampled address: 1 if it was one (recorder's lock held). */
int mt_sampler_remove(uintptr_t addr);

#endif
