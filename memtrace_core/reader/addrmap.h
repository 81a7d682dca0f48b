/* Open-addressing hash maps of the reader, in C so aggregation never touches Python objects.
 *
 * mt_addrmap: live heap allocation address -> (size, stack id, allocator); linear probing
 * with backward-shift deletion (no tombstones: millions of malloc/free keep probes short).
 * mt_stackmap: stack key (python node, native node, thread) -> stack id; insert-only.
 */
#ifndef MEMTRACE_ADDRMAP_H
#define MEMTRACE_ADDRMAP_H

#include <stddef.h>
#include <stdint.h>

#define MT_NO_ADDR UINT64_MAX

#define MT_LIVE_COUNT_MAX 0xFFFFFFu

typedef struct {
    uint64_t addr; /* MT_NO_ADDR marks an empty slot */
    uint64_t size; /* bytes (a sampled capture: the estimate this allocation stands for) */
    uint32_t sid;
    uint32_t allocator : 8;
    uint32_t count : 24; /* allocations it stands for: 1, or an estimate when sampled */
} mt_live;

typedef struct {
    mt_live *slots;
    size_t cap; /* power of two */
    size_t count;
    int shift; /* 64 - log2(cap) */
} mt_addrmap;

int mt_addrmap_init(mt_addrmap *m);
void mt_addrmap_free(mt_addrmap *m);
/* Insert; if addr was already live its old entry is copied to *old and 1 returned;
 * 0 for a new address; -1 when out of memory. addr must not be MT_NO_ADDR. */
int mt_addrmap_put(mt_addrmap *m, uint64_t addr, uint64_t size, uint32_t sid,
                   uint32_t allocator, uint32_t count, mt_live *old);
/* Remove addr; 1 (and *out filled) if it was live, 0 otherwise. */
int mt_addrmap_pop(mt_addrmap *m, uint64_t addr, mt_live *out);

typedef struct {
    uint32_t py, nat, thread, sid; /* sid UINT32_MAX marks an empty slot */
} mt_stackslot;

typedef struct {
    mt_stackslot *slots;
    size_t cap;
    size_t count;
    int shift;
} mt_stackmap;

int mt_stackmap_init(mt_stackmap *m);
void mt_stackmap_free(mt_stackmap *m);
/* The sid of the key, or UINT32_MAX when it is not there yet. */
uint32_t mt_stackmap_get(const mt_stackmap *m, uint32_t py, uint32_t nat, uint32_t thread);
/* Add a key known to be absent; -1 when out of memory. */
int mt_stackmap_add(mt_stackmap *m, uint32_t py, uint32_t nat, uint32_t thread, uint32_t sid);

#endif
