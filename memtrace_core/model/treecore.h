/* Plain C helpers of the call-tree builder (_tree.pyx): a u64 -> u32 hash map with
 * deletion and incremental growth, and the node record. Header-only: everything is
 * static inline. */
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
 * the churn of renames.
 *
 * Growing is incremental: a full table becomes the retiring one (okeys/ovals) and every
 * insertion moves MT_MIGRATE of its slots to the new, twice as large table, so no single
 * insertion rehashes everything (a call tree of a million nodes took 20-45 ms for that,
 * holding the UI's lock). Lookups look in the new table, then in the retiring one; an
 * entry inserted or deleted while its old copy is still there leaves a tombstone there
 * (the retiring table only loses entries, so its probe runs stay intact). */
#define MT_TOMB (UINT32_MAX - 1) /* a retiring table's slot whose entry is gone */
#define MT_MIGRATE 16            /* retiring slots moved per insertion */

typedef struct {
    uint64_t *keys;
    uint32_t *vals;
    size_t cap;   /* power of two */
    size_t count; /* entries, in both tables */
    uint64_t *okeys; /* the retiring table (NULL: none), slots from opos on not moved yet */
    uint32_t *ovals;
    size_t ocap, opos;
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
    m->okeys = NULL;
    m->ovals = NULL;
    m->ocap = m->opos = 0;
    return 0;
}

static inline int mt_map_init(mt_u64map *m) { return mt_map_alloc(m, 1024); }

static inline void mt_map_retired(mt_u64map *m)
{
    free(m->okeys);
    free(m->ovals);
    m->okeys = NULL;
    m->ovals = NULL;
    m->ocap = m->opos = 0;
}

static inline void mt_map_free(mt_u64map *m)
{
    mt_map_retired(m);
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->count = 0;
}

static inline void mt_map_clear(mt_u64map *m)
{
    mt_map_retired(m);
    memset(m->vals, 0xff, m->cap * sizeof(uint32_t));
    m->count = 0;
}

/* The slot of key in the retiring table, or SIZE_MAX (slots before opos were moved:
 * what they hold is stale, kept only so that the probe runs stay intact). */
static inline size_t mt_map_old_slot(const mt_u64map *m, uint64_t key)
{
    size_t mask = m->ocap - 1, i = (size_t)mt_hash64(key) & mask;
    while (m->ovals[i] != MT_NONE) {
        if (m->ovals[i] != MT_TOMB && m->okeys[i] == key) return i >= m->opos ? i : SIZE_MAX;
        i = (i + 1) & mask;
    }
    return SIZE_MAX;
}

static inline uint32_t mt_map_get(const mt_u64map *m, uint64_t key)
{
    size_t mask = m->cap - 1, i = (size_t)mt_hash64(key) & mask;
    while (m->vals[i] != MT_NONE) {
        if (m->keys[i] == key) return m->vals[i];
        i = (i + 1) & mask;
    }
    if (m->okeys != NULL) {
        i = mt_map_old_slot(m, key);
        if (i != SIZE_MAX) return m->ovals[i];
    }
    return MT_NONE;
}

/* Into the new table; 1 when the key was new there. */
static inline int mt_map_place(mt_u64map *m, uint64_t key, uint32_t val)
{
    size_t mask = m->cap - 1, i = (size_t)mt_hash64(key) & mask;
    while (m->vals[i] != MT_NONE) {
        if (m->keys[i] == key) {
            m->vals[i] = val;
            return 0;
        }
        i = (i + 1) & mask;
    }
    m->keys[i] = key;
    m->vals[i] = val;
    return 1;
}

/* Move up to n slots of the retiring table (its entries are not in the new table: an
 * insertion of one of their keys left a tombstone behind). */
static inline void mt_map_migrate(mt_u64map *m, size_t n)
{
    size_t end = m->opos + n;
    if (end > m->ocap) end = m->ocap;
    for (size_t i = m->opos; i < end; i++) {
        uint32_t v = m->ovals[i];
        if (v != MT_NONE && v != MT_TOMB) mt_map_place(m, m->okeys[i], v);
    }
    m->opos = end;
    if (end == m->ocap) mt_map_retired(m);
}

/* Insert or overwrite; -1 when out of memory. */
static inline int mt_map_put(mt_u64map *m, uint64_t key, uint32_t val)
{
    if (m->okeys != NULL) mt_map_migrate(m, MT_MIGRATE);
    if ((m->count + 1) * 10 > m->cap * 7) {
        /* the new table holds everything before it is this full (each insertion moves
         * MT_MIGRATE slots of a table half its size); finish a late one all the same */
        if (m->okeys != NULL) mt_map_migrate(m, m->ocap);
        uint64_t *okeys = m->keys;
        uint32_t *ovals = m->vals;
        size_t ocap = m->cap, count = m->count;
        if (mt_map_alloc(m, ocap * 2) < 0) {
            m->keys = okeys;
            m->vals = ovals;
            m->cap = ocap;
            m->count = count;
            return -1;
        }
        m->count = count;
        m->okeys = okeys;
        m->ovals = ovals;
        m->ocap = ocap;
        m->opos = 0;
        mt_map_migrate(m, MT_MIGRATE);
    }
    if (m->okeys != NULL) {
        size_t o = mt_map_old_slot(m, key);
        if (o != SIZE_MAX) { /* its old copy goes (a tombstone); it is counted once */
            m->ovals[o] = MT_TOMB;
            m->count--;
        }
    }
    m->count += mt_map_place(m, key, val);
    return 0;
}

/* Backward-shift deletion in the new table. */
static inline int mt_map_del_new(mt_u64map *m, uint64_t key)
{
    size_t mask = m->cap - 1, i = (size_t)mt_hash64(key) & mask;
    while (m->vals[i] != MT_NONE && m->keys[i] != key) i = (i + 1) & mask;
    if (m->vals[i] == MT_NONE) return 0;
    m->vals[i] = MT_NONE;
    size_t j = i;
    for (;;) { /* shift back every entry of the run that may not stay behind the hole */
        j = (j + 1) & mask;
        if (m->vals[j] == MT_NONE) return 1;
        size_t home = (size_t)mt_hash64(m->keys[j]) & mask;
        int between = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (between) continue;
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        m->vals[j] = MT_NONE;
        i = j;
    }
}

static inline void mt_map_del(mt_u64map *m, uint64_t key)
{
    if (mt_map_del_new(m, key)) {
        m->count--;
        return;
    }
    if (m->okeys != NULL) {
        size_t o = mt_map_old_slot(m, key);
        if (o != SIZE_MAX) {
            m->ovals[o] = MT_TOMB;
            m->count--;
        }
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
