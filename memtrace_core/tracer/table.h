/* Open-addressing hash table from a 3 x u64 key to a u32 id: interns stack-trie nodes and
 * code objects. Used only under the recorder lock; its slots are mappings of their own
 * (this module's own calls are never hooked). A freed table (slots NULL) finds nothing and
 * takes nothing. */
#ifndef MEMTRACE_TABLE_H
#define MEMTRACE_TABLE_H

#include <stdint.h>
#include <stddef.h>

typedef struct {
    uint64_t a, b, c;
    uint32_t value; /* 0 = empty slot */
} mt_slot;

typedef struct {
    mt_slot *slots;
    size_t mask;  /* capacity - 1, capacity a power of two */
    size_t count;
} mt_table;

int mt_table_init(mt_table *t, size_t capacity);
void mt_table_free(mt_table *t);
/* The id stored for the key, or 0. */
uint32_t mt_table_get(const mt_table *t, uint64_t a, uint64_t b, uint64_t c);
/* Store a new key (not present); returns 0 on success, -1 when out of memory. */
int mt_table_put(mt_table *t, uint64_t a, uint64_t b, uint64_t c, uint32_t value);

#endif
