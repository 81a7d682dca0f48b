/* Hash maps of the reader: see addrmap.h. */
#include "addrmap.h"

#include <stdlib.h>
#include <string.h>

#define GOLDEN 0x9E3779B97F4A7C15ULL
#define INITIAL_BITS 12

static inline size_t addr_home(const mt_addrmap *m, uint64_t addr)
{
    return (size_t)((addr * GOLDEN) >> m->shift);
}

static int addrmap_alloc(mt_addrmap *m, int bits)
{
    size_t cap = (size_t)1 << bits;
    mt_live *slots = malloc(cap * sizeof(mt_live));
    if (!slots) return -1;
    for (size_t i = 0; i < cap; i++) slots[i].addr = MT_NO_ADDR;
    m->slots = slots;
    m->cap = cap;
    m->count = 0;
    m->shift = 64 - bits;
    return 0;
}

int mt_addrmap_init(mt_addrmap *m) { return addrmap_alloc(m, INITIAL_BITS); }

void mt_addrmap_free(mt_addrmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

static void addrmap_place(mt_addrmap *m, const mt_live *e)
{
    size_t mask = m->cap - 1;
    size_t i = addr_home(m, e->addr);
    while (m->slots[i].addr != MT_NO_ADDR) i = (i + 1) & mask;
    m->slots[i] = *e;
    m->count++;
}

static int addrmap_grow(mt_addrmap *m)
{
    mt_addrmap bigger;
    if (addrmap_alloc(&bigger, 64 - m->shift + 1) < 0) return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].addr != MT_NO_ADDR) addrmap_place(&bigger, &m->slots[i]);
    free(m->slots);
    *m = bigger;
    return 0;
}

int mt_addrmap_put(mt_addrmap *m, uint64_t addr, uint64_t size, uint32_t sid,
                   uint32_t allocator, uint32_t count, mt_live *old)
{
    if ((m->count + 1) * 10 > m->cap * 7 && addrmap_grow(m) < 0) return -1;
    size_t mask = m->cap - 1;
    size_t i = addr_home(m, addr);
    for (;;) {
        mt_live *s = &m->slots[i];
        if (s->addr == MT_NO_ADDR) {
            s->addr = addr;
            s->size = size;
            s->sid = sid;
            s->allocator = allocator;
            s->count = count;
            m->count++;
            return 0;
        }
        if (s->addr == addr) {
            *old = *s;
            s->size = size;
            s->sid = sid;
            s->allocator = allocator;
            s->count = count;
            return 1;
        }
        i = (i + 1) & mask;
    }
}

int mt_addrmap_pop(mt_addrmap *m, uint64_t addr, mt_live *out)
{
    size_t mask = m->cap - 1;
    size_t i = addr_home(m, addr);
    for (;;) {
        mt_live *s = &m->slots[i];
        if (s->addr == MT_NO_ADDR) return 0;
        if (s->addr == addr) break;
        i = (i + 1) & mask;
    }
    *out = m->slots[i];
    /* Backward-shift deletion: pull later entries of the probe run into the hole when
     * their home position does not lie in (hole, j]. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        mt_live *s = &m->slots[j];
        if (s->addr == MT_NO_ADDR) break;
        size_t k = addr_home(m, s->addr);
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            m->slots[i] = *s;
            i = j;
        }
    }
    m->slots[i].addr = MT_NO_ADDR;
    m->count--;
    return 1;
}

/* ---- stack map ---- */

static inline size_t stack_home(const mt_stackmap *m, uint32_t py, uint32_t nat, uint32_t thread)
{
    uint64_t h = (((uint64_t)py << 32) | nat) * GOLDEN;
    h ^= (uint64_t)thread * 0xC2B2AE3D27D4EB4FULL;
    h ^= h >> 29;
    h *= GOLDEN;
    return (size_t)(h >> m->shift);
}

static int stackmap_alloc(mt_stackmap *m, int bits)
{
    size_t cap = (size_t)1 << bits;
    mt_stackslot *slots = malloc(cap * sizeof(mt_stackslot));
    if (!slots) return -1;
    for (size_t i = 0; i < cap; i++) slots[i].sid = UINT32_MAX;
    m->slots = slots;
    m->cap = cap;
    m->count = 0;
    m->shift = 64 - bits;
    return 0;
}

int mt_stackmap_init(mt_stackmap *m) { return stackmap_alloc(m, 10); }

void mt_stackmap_free(mt_stackmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

uint32_t mt_stackmap_get(const mt_stackmap *m, uint32_t py, uint32_t nat, uint32_t thread)
{
    size_t mask = m->cap - 1;
    size_t i = stack_home(m, py, nat, thread);
    for (;;) {
        const mt_stackslot *s = &m->slots[i];
        if (s->sid == UINT32_MAX) return UINT32_MAX;
        if (s->py == py && s->nat == nat && s->thread == thread) return s->sid;
        i = (i + 1) & mask;
    }
}

static void stackmap_place(mt_stackmap *m, const mt_stackslot *e)
{
    size_t mask = m->cap - 1;
    size_t i = stack_home(m, e->py, e->nat, e->thread);
    while (m->slots[i].sid != UINT32_MAX) i = (i + 1) & mask;
    m->slots[i] = *e;
    m->count++;
}

int mt_stackmap_add(mt_stackmap *m, uint32_t py, uint32_t nat, uint32_t thread, uint32_t sid)
{
    if ((m->count + 1) * 2 > m->cap) {
        mt_stackmap bigger;
        if (stackmap_alloc(&bigger, 64 - m->shift + 1) < 0) return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].sid != UINT32_MAX) stackmap_place(&bigger, &m->slots[i]);
        free(m->slots);
        *m = bigger;
    }
    mt_stackslot e = {py, nat, thread, sid};
    stackmap_place(m, &e);
    return 0;
}
