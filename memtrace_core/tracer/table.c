/* Hash table of interned ids (see table.h). */
#include "table.h"

#include <stddef.h>
#include <sys/mman.h>

/* Slots in a mapping of their own (zeroed by the system): a table freed when a recording
 * stops goes back to the system at once, where a freed calloc block of 2 MiB may stay in
 * the heap (glibc serves it from the heap once the program freed large mappings). */
static mt_slot *slots_make(size_t cap) {
    void *p = mmap(NULL, cap * sizeof(mt_slot), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void slots_drop(mt_slot *slots, size_t cap) {
    if (slots) munmap(slots, cap * sizeof(mt_slot));
}

static inline uint64_t mix(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t h = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL
                 ^ (c + 0x165667B19E3779F9ULL) * 0x94D049BB133111EBULL;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 29;
    return h;
}

int mt_table_init(mt_table *t, size_t capacity) {
    size_t cap = 1024;
    while (cap < capacity) cap <<= 1;
    t->slots = slots_make(cap);
    if (!t->slots) return -1;
    t->mask = cap - 1;
    t->count = 0;
    return 0;
}

void mt_table_free(mt_table *t) {
    if (t->slots) slots_drop(t->slots, t->mask + 1);
    t->slots = NULL;
    t->mask = 0;
    t->count = 0;
}

uint32_t mt_table_get(const mt_table *t, uint64_t a, uint64_t b, uint64_t c) {
    if (!t->slots) return 0; /* freed (a stopped recording): nothing is in it */
    size_t i = (size_t)mix(a, b, c) & t->mask;
    for (;;) {
        const mt_slot *s = &t->slots[i];
        if (s->value == 0) return 0;
        if (s->a == a && s->b == b && s->c == c) return s->value;
        i = (i + 1) & t->mask;
    }
}

static void insert(mt_slot *slots, size_t mask, uint64_t a, uint64_t b, uint64_t c, uint32_t v) {
    size_t i = (size_t)mix(a, b, c) & mask;
    while (slots[i].value != 0) i = (i + 1) & mask;
    slots[i].a = a;
    slots[i].b = b;
    slots[i].c = c;
    slots[i].value = v;
}

int mt_table_put(mt_table *t, uint64_t a, uint64_t b, uint64_t c, uint32_t value) {
    if (!t->slots) return -1; /* freed: a record still under way when its recording stopped */
    if ((t->count + 1) * 2 > t->mask + 1) {
        size_t cap = (t->mask + 1) * 2;
        mt_slot *fresh = slots_make(cap);
        if (!fresh) return -1;
        for (size_t i = 0; i <= t->mask; i++) {
            mt_slot *s = &t->slots[i];
            if (s->value) insert(fresh, cap - 1, s->a, s->b, s->c, s->value);
        }
        slots_drop(t->slots, t->mask + 1);
        t->slots = fresh;
        t->mask = cap - 1;
    }
    insert(t->slots, t->mask, a, b, c, value);
    t->count++;
    return 0;
}
