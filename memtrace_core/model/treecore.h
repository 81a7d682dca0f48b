/* Plain C helpers of the call-tree builder (_tree.pyx): a u64 -> u32 hash map with
 * deletion, and the node record. Header-only: everything is static inline. */
#ifndef MEMTRACE_TREECORE_H
#define MEMTRACE_TREECORE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MT_NONE UINT32_MAX
#define MT_NC 14 /* counters per stack: metrics.py (alloc, live, peak, temporary, since the
                   mark, growth, at the timeline's cursor: bytes and count) */

/* Open addressing with linear probing; a slot is empty when its value is MT_NONE.
 * Deletion shifts the following run back (no tombstones), so lookups stay short under
 * the churn of renames. */
typedef struct {
    uint64_t *keys;
    uint32_t *vals;
    size_t cap; /* power of two */
    size_t count;
} mt_u64map;

static inline uint64_t mt_hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline int mt_map_alloc(mt_u64map *m, size_t cap)
{
    uint64_t *keys = malloc(cap * sizeof(uint64_t));
    uint32_t *vals = malloc(cap * sizeof(uint32_t));
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -1;
    }
    memset(vals, 0xff, cap * sizeof(uint32_t));
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    m->count = 0;
    return 0;
}

static inline int mt_map_init(mt_u64map *m) { return mt_map_alloc(m, 1024); }

static inline void mt_map_free(mt_u64map *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->count = 0;
}

static inline void mt_map_clear(mt_u64map *m)
{
    memset(m->vals, 0xff, m->cap * sizeof(uint32_t));
    m->count = 0;
}

static inline uint32_t mt_map_get(const mt_u64map *m, uint64_t key)
{
    size_t mask = m->cap - 1, i = (size_t)mt_hash64(key) & mask;
    while (m->vals[i] != MT_NONE) {
        if (m->keys[i] == key) return m->vals[i];
        i = (i + 1) & mask;
    }
    return MT_NONE;
}

static inline void mt_map_place(mt_u64map *m, uint64_t key, uint32_t val)
{
    size_t mask = m->cap - 1, i = (size_t)mt_hash64(key) & mask;
    while (m->vals[i] != MT_NONE) {
        if (m->keys[i] == key) {
            m->vals[i] = val;
            return;
        }
        i = (i + 1) & mask;
    }
    m->keys[i] = key;
    m->vals[i] = val;
    m->count++;
}

/* Insert or overwrite; -1 when out of memory. */
static inline int mt_map_put(mt_u64map *m, uint64_t key, uint32_t val)
{
    if ((m->count + 1) * 10 > m->cap * 7) {
        mt_u64map bigger;
        if (mt_map_alloc(&bigger, m->cap * 2) < 0) return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->vals[i] != MT_NONE) mt_map_place(&bigger, m->keys[i], m->vals[i]);
        mt_map_free(m);
        *m = bigger;
    }
    mt_map_place(m, key, val);
    return 0;
}

static inline void mt_map_del(mt_u64map *m, uint64_t key)
{
    size_t mask = m->cap - 1, i = (size_t)mt_hash64(key) & mask;
    while (m->vals[i] != MT_NONE && m->keys[i] != key) i = (i + 1) & mask;
    if (m->vals[i] == MT_NONE) return;
    m->vals[i] = MT_NONE;
    m->count--;
    size_t j = i;
    for (;;) { /* shift back every entry of the run that may not stay behind the hole */
        j = (j + 1) & mask;
        if (m->vals[j] == MT_NONE) return;
        size_t home = (size_t)mt_hash64(m->keys[j]) & mask;
        int between = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (between) continue;
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        m->vals[j] = MT_NONE;
        i = j;
    }
}

static inline double mt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A hint that *p is read soon (the commit's final pass visits nodes in no order). */
static inline void mt_prefetch(const void *p) { __builtin_prefetch(p, 1); }

/* One call-tree node: a frame at one position. Kept small (it is per node of a tree that
 * can hold millions): a node's own counters are its total minus its children's, deltas
 * waiting to be pushed up live in a side pool (`pend`: a slot while the node is dirty),
 * and a dead node's successor in a side map. */
typedef struct {
    int64_t total[MT_NC];
    uint32_t parent, frame, first_child, next_sibling, prev_sibling;
    uint32_t refs;  /* stacks ending here + live children: 0 = the node dies */
    uint32_t depth; /* root 0 */
    uint32_t pend;  /* slot in the pending-delta pool while dirty, else MT_NONE */
    uint8_t alive;
    uint8_t repeat; /* its frame also appears on an ancestor (recursion) */
} mt_node;

#endif
