/* Aggregation and the hot decode loop of the reader: see aggregate.h. */
#include "aggregate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpack.h"

/* A node id may exceed the number of nodes defined so far by at most this much, so corrupt
 * or hostile ids cannot make the reader allocate more than the stream's own size warrants.
 * The tracer numbers nodes consecutively from 1. */
#define MT_NODE_GAP (1u << 20)
#define MT_MAX_ID 0xFFFFFFF0u

int mt_state_init(mt_state *s)
{
    memset(s, 0, sizeof(*s));
    if (mt_addrmap_init(&s->live) < 0) return -1;
    if (mt_stackmap_init(&s->stackmap) < 0) return -1;
    s->last_sid = UINT32_MAX;
    s->temp_threshold = MT_TEMP_DEFAULT;
    return 0;
}

void mt_state_free(mt_state *s)
{
    free(s->py_parent); free(s->py_code); free(s->py_line); free(s->py_flags);
    free(s->nat_parent); free(s->nat_ip); free(s->nat_flags);
    free(s->stacks); free(s->peak_dirty); free(s->changed);
    free(s->pieces); free(s->mapping_pieces);
    free(s->recent); free(s->recent_at); free(s->ctxs);
    mt_addrmap_free(&s->live);
    mt_stackmap_free(&s->stackmap);
    memset(s, 0, sizeof(*s));
}

/* Grow *arr (of elem bytes each) to hold at least need elements, zeroing the new part. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need) n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p) return -1;
    memset((char *)p + *cap * elem, 0, (n - *cap) * elem);
    *arr = p;
    *cap = n;
    return 0;
}

static int grow_py(mt_state *s, size_t need)
{
    size_t cap = s->py_cap, c;
    c = cap; if (grow((void **)&s->py_parent, &c, need, sizeof(uint32_t))) return -1;
    c = cap; if (grow((void **)&s->py_code, &c, need, sizeof(uint64_t))) return -1;
    c = cap; if (grow((void **)&s->py_line, &c, need, sizeof(int64_t))) return -1;
    c = cap; if (grow((void **)&s->py_flags, &c, need, sizeof(uint8_t))) return -1;
    s->py_cap = c;
    return 0;
}

static int grow_nat(mt_state *s, size_t need)
{
    size_t cap = s->nat_cap, c;
    c = cap; if (grow((void **)&s->nat_parent, &c, need, sizeof(uint32_t))) return -1;
    c = cap; if (grow((void **)&s->nat_ip, &c, need, sizeof(uint64_t))) return -1;
    c = cap; if (grow((void **)&s->nat_flags, &c, need, sizeof(uint8_t))) return -1;
    s->nat_cap = c;
    return 0;
}

static inline void mark(mt_state *s, uint32_t sid)
{
    mt_stack *st = &s->stacks[sid];
    if (!(st->flags & MT_STACK_PEAK_DIRTY)) {
        st->flags |= MT_STACK_PEAK_DIRTY;
        s->peak_dirty[s->n_peak_dirty++] = sid;
    }
    if (!(st->flags & MT_STACK_CHANGED)) {
        st->flags |= MT_STACK_CHANGED;
        s->changed[s->n_changed++] = sid;
    }
}

void mt_take_peak(mt_state *s)
{
    for (size_t i = 0; i < s->n_peak_dirty; i++) {
        uint32_t sid = s->peak_dirty[i];
        mt_stack *st = &s->stacks[sid];
        if (st->peak_bytes != st->live_bytes || st->peak_count != st->live_count) {
            st->peak_bytes = st->live_bytes;
            st->peak_count = st->live_count;
            /* its peak figures changed: take_changed() must report it even when its live
             * figures were taken before this peak */
            if (!(st->flags & MT_STACK_CHANGED)) {
                st->flags |= MT_STACK_CHANGED;
                s->changed[s->n_changed++] = sid;
            }
        }
        st->flags &= ~MT_STACK_PEAK_DIRTY;
    }
    s->n_peak_dirty = 0;
    s->peak_bytes = s->heap_bytes;
    s->peak_allocs = s->heap_allocs;
    s->peak_time_us = s->last_time_us;
    s->peak_by_us = -1;
}

/* The stack id of (py, nat, thread), interning it on first sight; UINT32_MAX on no memory. */
static inline uint32_t intern(mt_state *s, uint32_t py, uint32_t nat, uint32_t thread)
{
    if (s->last_sid != UINT32_MAX && py == s->last_py && nat == s->last_nat &&
        thread == s->last_thread)
        return s->last_sid;
    uint32_t sid = mt_stackmap_get(&s->stackmap, py, nat, thread);
    if (sid == UINT32_MAX) {
        if (s->n_stacks >= MT_MAX_ID) return UINT32_MAX;
        size_t need = s->n_stacks + 1;
        if (need > s->stacks_cap) {
            size_t c = s->stacks_cap;
            if (grow((void **)&s->stacks, &c, need, sizeof(mt_stack))) return UINT32_MAX;
            size_t c2 = s->stacks_cap;
            if (grow((void **)&s->peak_dirty, &c2, need, sizeof(uint32_t))) return UINT32_MAX;
            c2 = s->stacks_cap;
            if (grow((void **)&s->changed, &c2, need, sizeof(uint32_t))) return UINT32_MAX;
            s->stacks_cap = c;
        }
        sid = (uint32_t)s->n_stacks;
        if (mt_stackmap_add(&s->stackmap, py, nat, thread, sid) < 0) return UINT32_MAX;
        mt_stack *st = &s->stacks[sid];
        memset(st, 0, sizeof(*st));
        st->py = py;
        st->nat = nat;
        st->thread = thread;
        s->n_stacks++;
        mark(s, sid); /* new stacks are reported by take_changed() */
    }
    s->last_py = py;
    s->last_nat = nat;
    s->last_thread = thread;
    s->last_sid = sid;
    return sid;
}

int mt_set_temp_threshold(mt_state *s, uint32_t n)
{
    if (s->total_allocs || s->recent || n > MT_TEMP_MAX) return -1;
    s->temp_threshold = n;
    return 0;
}

/* Remember addr as thread's newest allocation (its ring forgets the oldest). */
static int note_recent(mt_state *s, uint64_t thread, uint64_t addr)
{
    size_t ring = (size_t)s->temp_threshold + 1;
    if (thread >= s->recent_threads) {
        size_t old = s->recent_threads, c = old;
        if (grow((void **)&s->recent_at, &c, thread + 1, sizeof(uint32_t))) return -1;
        size_t slots = old * ring, cs = slots;
        if (grow((void **)&s->recent, &cs, c * ring, sizeof(uint64_t))) return -1;
        for (size_t i = slots; i < c * ring; i++) s->recent[i] = MT_NO_ADDR;
        s->recent_threads = c;
    }
    uint32_t at = s->recent_at[thread];
    s->recent[thread * ring + at] = addr;
    s->recent_at[thread] = at + 1 == ring ? 0 : at + 1;
    return 0;
}

/* A free by thread of a block its own thread allocated at addr: temporary when addr is one
 * of the thread's last threshold + 1 allocations (the block freed is the newest allocation
 * at addr, and it is the thread's, so a match is that very allocation). */
static inline void check_temporary(mt_state *s, uint64_t thread, const mt_live *old)
{
    /* a sampled capture has no "other allocations" to count: only the sampled ones */
    if (s->sample_mean > 0) return;
    if (thread >= s->recent_threads || s->stacks[old->sid].thread != thread) return;
    size_t ring = (size_t)s->temp_threshold + 1;
    uint64_t *r = &s->recent[thread * ring];
    for (size_t i = 0; i < ring; i++) {
        if (r[i] == old->addr) {
            r[i] = MT_NO_ADDR;
            mt_stack *st = &s->stacks[old->sid];
            st->temp_bytes += (int64_t)old->size;
            st->temp_count++;
            s->temp_bytes += (int64_t)old->size;
            s->temp_allocs++;
            return;
        }
    }
}

static inline void drop_live(mt_state *s, uint32_t sid, int64_t bytes, int64_t count)
{
    mt_stack *st = &s->stacks[sid];
    st->live_bytes -= bytes;
    st->live_count -= count;
    s->heap_bytes -= bytes;
    s->heap_allocs -= count;
    mark(s, sid);
}

/* First piece whose end is above addr (pieces are disjoint and sorted, so ends are too). */
static size_t piece_after(const mt_state *s, uint64_t addr)
{
    size_t lo = 0, hi = s->n_pieces;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->pieces[mid].end > addr) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

static int insert_piece(mt_state *s, size_t at, mt_piece p)
{
    if (grow((void **)&s->pieces, &s->pieces_cap, s->n_pieces + 1, sizeof(mt_piece))) return -1;
    memmove(&s->pieces[at + 1], &s->pieces[at], (s->n_pieces - at) * sizeof(mt_piece));
    s->pieces[at] = p;
    s->n_pieces++;
    return 0;
}

static inline void drop_reserved(mt_state *s, uint32_t sid, int64_t bytes, int64_t count)
{
    mt_stack *st = &s->stacks[sid];
    st->reserved_bytes -= bytes;
    st->reserved_count -= count;
    s->reserved_bytes -= bytes;
    s->reserved_count -= count;
}

/* Bytes [a, b) of a piece go: from the heap, or from the reserved address space. */
static inline void drop_piece(mt_state *s, const mt_piece *p, int64_t bytes, int gone)
{
    if (p->reserved) drop_reserved(s, p->sid, bytes, gone);
    else drop_live(s, p->sid, bytes, gone);
}

/* Unmap [a, b) from every mapping: returns 1 if an mmap allocation was touched, 2 if only
 * reservations were, 0 if nothing was, -1 on no memory. */
static int unmap_range(mt_state *s, uint64_t a, uint64_t b)
{
    int touched = 0;
    size_t i = piece_after(s, a);
    while (i < s->n_pieces && s->pieces[i].start < b) {
        mt_piece *p = &s->pieces[i];
        if (!p->reserved) touched = 1;
        else if (!touched) touched = 2;
        if (p->start >= a && p->end <= b) {
            int gone = --s->mapping_pieces[p->mapping] == 0;
            drop_piece(s, p, (int64_t)(p->end - p->start), gone);
            memmove(p, p + 1, (s->n_pieces - i - 1) * sizeof(mt_piece));
            s->n_pieces--;
        } else if (p->start < a && p->end > b) {
            mt_piece right = {b, p->end, p->sid, p->mapping, p->reserved};
            drop_piece(s, p, (int64_t)(b - a), 0);
            p->end = a;
            s->mapping_pieces[p->mapping]++;
            if (insert_piece(s, i + 1, right) < 0) return -1;
            i += 2;
        } else if (p->start < a) {
            drop_piece(s, p, (int64_t)(p->end - a), 0);
            p->end = a;
            i++;
        } else {
            drop_piece(s, p, (int64_t)(b - p->start), 0);
            p->start = b;
            i++;
        }
    }
    return touched;
}

/* A new mapping [addr, end) made at stack sid (what it maps over is unmapped first, as
 * MAP_FIXED does). */
static int add_mapping(mt_state *s, uint64_t addr, uint64_t end, uint32_t sid, int reserved)
{
    if (s->n_pieces && unmap_range(s, addr, end) < 0) return MT_NOMEM;
    if (grow((void **)&s->mapping_pieces, &s->mappings_cap, s->n_mappings + 1,
             sizeof(uint32_t)))
        return MT_NOMEM;
    if (s->n_mappings >= MT_MAX_ID) return MT_NOMEM;
    uint32_t mapping = (uint32_t)s->n_mappings++;
    s->mapping_pieces[mapping] = 1;
    mt_piece p = {addr, end, sid, mapping, (uint32_t)reserved};
    if (insert_piece(s, piece_after(s, addr), p) < 0) return MT_NOMEM;
    return 0;
}

/* A reservation of address space (MMAP_RESERVE): where it was made, and how much is
 * reserved, apart from every heap figure (allocated, in use, peak, per allocator). */
static int on_reserve(mt_state *s, uint32_t sid, uint64_t addr, uint64_t size)
{
    if (addr == MT_NO_ADDR || size == 0) return 0;
    uint64_t end = addr + size < addr ? UINT64_MAX : addr + size;
    int r = add_mapping(s, addr, end, sid, 1);
    if (r < 0) return r;
    int64_t bytes = (int64_t)(end - addr);
    mt_stack *st = &s->stacks[sid];
    st->reserved_bytes += bytes;
    st->reserved_count++;
    s->reserved_bytes += bytes;
    s->reserved_count++;
    s->reserved_total_bytes += bytes;
    s->reserved_total_count++;
    if (s->reserved_bytes > s->reserved_peak) s->reserved_peak = s->reserved_bytes;
    return 0;
}

static inline int hist_bucket(uint64_t size)
{
    return size ? 64 - __builtin_clzll(size) : 0;
}

/* What a sampled allocation of `size` bytes stands for. The tracer records one with
 * probability p = 1 - exp(-size/mean) (docs/FORMAT.md), so size/p bytes and 1/p allocations
 * are unbiased estimates; the fractional part of 1/p is carried to the next one, so counts
 * add up without drift. mmap is never sampled: it stands for itself. */
static void sampled_weight(mt_state *s, uint64_t allocator, uint64_t size, int64_t *bytes,
                           int64_t *count)
{
    *bytes = (int64_t)size;
    *count = 1;
    if (s->sample_mean <= 0 || MT_IS_MAPPING(allocator) || size == 0) return;
    double inv_p = 1.0 / -expm1(-(double)size / s->sample_mean);
    if (!(inv_p >= 1.0)) inv_p = 1.0; /* rounding at huge sizes */
    double b = (double)size * inv_p;
    *bytes = b < 9.0e18 ? (int64_t)llround(b) : INT64_MAX / 4;
    double c = s->count_carry + inv_p;
    double whole = floor(c);
    if (whole > MT_LIVE_COUNT_MAX) whole = MT_LIVE_COUNT_MAX;
    s->count_carry = c - whole < 1.0 ? c - whole : 0.0;
    *count = (int64_t)whole;
}

static int on_alloc(mt_state *s, uint64_t thread, uint64_t allocator, uint64_t addr,
                    uint64_t size, uint64_t py, uint64_t nat)
{
    if (allocator == 0) { s->error = "ALLOC with allocator 0"; return MT_CORRUPT; }
    if (py && (py >= s->py_cap || !(s->py_flags[py] & 1))) {
        s->error = "ALLOC refers to an undefined Python stack node";
        return MT_CORRUPT;
    }
    if (nat && (nat >= s->nat_cap || !(s->nat_flags[nat] & 1))) {
        s->error = "ALLOC refers to an undefined native stack node";
        return MT_CORRUPT;
    }
    uint32_t sid = intern(s, (uint32_t)py, (uint32_t)nat, (uint32_t)thread);
    if (sid == UINT32_MAX) return MT_NOMEM;
    if (allocator == MT_MMAP_RESERVE) return on_reserve(s, sid, addr, size);
    int64_t sz, n;
    sampled_weight(s, allocator, size, &sz, &n);
    s->total_bytes += sz;
    s->total_allocs += n;
    s->allocator_count[allocator] += n;
    s->allocator_bytes[allocator] += sz;
    s->hist[hist_bucket(size)] += n;
    mt_stack *st = &s->stacks[sid];
    st->alloc_bytes += sz;
    st->alloc_count += n;
    if (addr == MT_NO_ADDR) return 0; /* MAP_FAILED-like: nothing was allocated */
    if (note_recent(s, thread, addr) < 0) return MT_NOMEM;
    if (allocator == MT_MMAP) {
        if (size == 0) return 0; /* maps nothing */
        uint64_t end = addr + size < addr ? UINT64_MAX : addr + size;
        int r = add_mapping(s, addr, end, sid, 0);
        if (r < 0) return r;
    } else {
        mt_live old;
        int r = mt_addrmap_put(&s->live, addr, (uint64_t)sz, sid, (uint32_t)allocator,
                               (uint32_t)n, &old);
        if (r < 0) return MT_NOMEM;
        if (r == 1) { /* its free was never seen: the old block is gone */
            s->implicit_frees++;
            drop_live(s, old.sid, (int64_t)old.size, old.count);
        }
    }
    st = &s->stacks[sid];
    st->live_bytes += sz;
    st->live_count += n;
    s->heap_bytes += sz;
    s->heap_allocs += n;
    mark(s, sid);
    if (s->heap_bytes > s->peak_bytes) mt_take_peak(s);
    return 0;
}

static int on_free(mt_state *s, uint64_t thread, uint64_t allocator, uint64_t addr,
                   uint64_t size)
{
    if (allocator == MT_MUNMAP) {
        int r = 0;
        if (size && s->n_pieces) {
            uint64_t end = addr + size < addr ? UINT64_MAX : addr + size;
            r = unmap_range(s, addr, end);
            if (r < 0) return MT_NOMEM;
        }
        if (r == 1) s->total_frees++;
        else if (r == 0) s->ignored_frees++; /* 2: a reservation's range, not a free */
        return 0;
    }
    mt_live old;
    if (addr != MT_NO_ADDR && mt_addrmap_pop(&s->live, addr, &old)) {
        check_temporary(s, thread, &old);
        drop_live(s, old.sid, (int64_t)old.size, old.count);
        s->total_frees++;
    } else {
        s->ignored_frees++;
    }
    return 0;
}

/* A sampled capture's heap ALLOC (format 5 on): its ordinal is its key among the live
 * blocks; a field v > 0 says its address still held the block sent v sampled ALLOCs before
 * it, whose free was never seen (an implicit free, as an exact capture's address reuse). */
static int ordinal_alloc(mt_state *s, uint64_t v, uint64_t *key)
{
    uint64_t ordinal = s->next_ordinal++;
    if (v > ordinal) {
        s->error = "ALLOC replaces a block that was never sent";
        return MT_CORRUPT;
    }
    *key = ordinal;
    mt_live old;
    if (v && !s->nodes_only && mt_addrmap_pop(&s->live, ordinal - v, &old)) {
        s->implicit_frees++;
        drop_live(s, old.sid, (int64_t)old.size, old.count);
    }
    return 0;
}

/* A sampled capture's heap FREE: k = how many sampled ALLOCs came after the one it frees
 * (one that was never sent is ignored, as an unknown address is). */
static inline uint64_t ordinal_free(const mt_state *s, uint64_t k)
{
    return k < s->next_ordinal ? s->next_ordinal - 1 - k : MT_NO_ADDR;
}

#define READ(expr)                                                \
    do {                                                          \
        int r_ = (expr);                                          \
        if (r_ == MP_MORE) return MT_DONE;                        \
        if (r_ == MP_BAD) { s->error = bad; return MT_CORRUPT; }  \
    } while (0)

int mt_decode(mt_state *s, const uint8_t *buf, size_t n, size_t *pos, int *type,
              size_t *rec_end)
{
    const uint8_t *end = buf + n;
    const char *bad;
    while (*pos < n) {
        const uint8_t *p = buf + *pos;
        uint64_t count, t;
        bad = "a record is not a msgpack array";
        READ(mp_array(&p, end, &count));
        if (count == 0) { s->error = "empty record"; return MT_CORRUPT; }
        bad = "record type is not a small integer";
        READ(mp_uint(&p, end, 255, &t));
        if (t > MT_REC_LAST || (t > MT_REC_TRAILER && s->format < MT_REC_FORMAT(t))) {
            s->error = "unknown record type"; /* newer than the stream's format */
            return MT_CORRUPT;
        }
        if (s->trailer_seen) { s->error = "data after TRAILER"; return MT_CORRUPT; }
        if (!s->header_seen && t != MT_REC_HEADER) {
            s->error = "first record is not HEADER";
            return MT_CORRUPT;
        }
        int r;
        switch (t) {
        case MT_REC_ALLOC: {
            uint64_t thread, allocator, addr, size, py, nat;
            if (count != 7) { s->error = "ALLOC record has the wrong length"; return MT_CORRUPT; }
            bad = "bad field in ALLOC record";
            READ(mp_uint(&p, end, MT_MAX_ID, &thread));
            READ(mp_uint(&p, end, 255, &allocator));
            READ(mp_addr(&p, end, &addr));
            READ(mp_uint(&p, end, INT64_MAX, &size));
            READ(mp_uint(&p, end, MT_MAX_ID, &py));
            READ(mp_uint(&p, end, MT_MAX_ID, &nat));
            if (s->ordinals && !MT_IS_MAPPING(allocator)) {
                if ((r = ordinal_alloc(s, addr, &addr))) return r;
            } else {
                addr += s->last_addr; /* a delta from the previous ALLOC/FREE address */
                s->last_addr = addr;
            }
            s->alloc_seen = 1;
            s->alloc_thread = thread;
            s->alloc_allocator = allocator;
            s->alloc_py = py;
            s->alloc_nat = nat;
            if (s->ordinals && s->format >= MT_REC_FORMAT(MT_REC_ALLOC_AGAIN)) {
                if (grow((void **)&s->ctxs, &s->ctx_cap, s->n_ctxs + 1, sizeof *s->ctxs) < 0)
                    return MT_NOMEM;
                s->ctxs[s->n_ctxs++] = (struct mt_alloc_ctx){(uint32_t)thread,
                                                             (uint32_t)allocator,
                                                             (uint32_t)py, (uint32_t)nat};
            }
            if (s->nodes_only) break;
            r = on_alloc(s, thread, allocator, addr, size, py, nat);
            if (r) return r;
            break;
        }
        case MT_REC_ALLOC_AGAIN: {
            uint64_t ctx, addr, size;
            if (count != 4) {
                s->error = "ALLOC_AGAIN record has the wrong length";
                return MT_CORRUPT;
            }
            if (!s->ordinals) {
                s->error = "ALLOC_AGAIN in a capture that is not sampled";
                return MT_CORRUPT;
            }
            bad = "bad field in ALLOC_AGAIN record";
            READ(mp_uint(&p, end, MT_MAX_ID, &ctx));
            READ(mp_addr(&p, end, &addr));
            READ(mp_uint(&p, end, INT64_MAX, &size));
            if (ctx >= s->n_ctxs) {
                s->error = "ALLOC_AGAIN names an ALLOC record not sent yet";
                return MT_CORRUPT;
            }
            const struct mt_alloc_ctx *c = &s->ctxs[ctx];
            s->alloc_thread = c->thread;
            s->alloc_allocator = c->allocator;
            s->alloc_py = c->py;
            s->alloc_nat = c->nat;
            if (!MT_IS_MAPPING(c->allocator)) {
                if ((r = ordinal_alloc(s, addr, &addr))) return r;
            } else {
                addr += s->last_addr;
                s->last_addr = addr;
            }
            if (s->nodes_only) break;
            r = on_alloc(s, c->thread, c->allocator, addr, size, c->py, c->nat);
            if (r) return r;
            break;
        }
        case MT_REC_ALLOC_SAME: {
            uint64_t addr, size;
            if (count != 3) {
                s->error = "ALLOC_SAME record has the wrong length";
                return MT_CORRUPT;
            }
            if (!s->alloc_seen) { s->error = "ALLOC_SAME before any ALLOC"; return MT_CORRUPT; }
            bad = "bad field in ALLOC_SAME record";
            READ(mp_addr(&p, end, &addr));
            READ(mp_uint(&p, end, INT64_MAX, &size));
            if (s->ordinals && !MT_IS_MAPPING(s->alloc_allocator)) {
                if ((r = ordinal_alloc(s, addr, &addr))) return r;
            } else {
                addr += s->last_addr;
                s->last_addr = addr;
            }
            if (s->nodes_only) break;
            r = on_alloc(s, s->alloc_thread, s->alloc_allocator, addr, size, s->alloc_py,
                         s->alloc_nat);
            if (r) return r;
            break;
        }
        case MT_REC_EVENTS: {
            /* A bin of items, each an ALLOC_SAME or a FREE_SAME (wire/format.h): the
             * whole bin is checked before any of it counts, so a damaged one counts for
             * nothing and a cut one is read again whole once its bytes come. */
            uint64_t len;
            if (count != 2) {
                s->error = "EVENTS record has the wrong length";
                return MT_CORRUPT;
            }
            if (s->ordinals) {
                s->error = "EVENTS in a sampled capture";
                return MT_CORRUPT;
            }
            bad = "bad field in EVENTS record";
            READ(mp_bin(&p, end, &len));
            if (len > MT_EVENTS_BYTES) { s->error = "EVENTS bin too long"; return MT_CORRUPT; }
            if ((uint64_t)(end - p) < len) return MT_DONE;
            const uint8_t *items = p, *items_end = p + len;
            uint64_t n_items = 0;
            p = items_end;
            for (int apply = 0; apply < 2; apply++) {
                uint64_t last = s->last_addr;
                for (const uint8_t *q = items; q < items_end;) {
                    uint64_t v, size = 0;
                    if (ev_number(&q, items_end, &v)) {
                        s->error = "EVENTS item cut short";
                        return MT_CORRUPT;
                    }
                    int alloc = (int)(v & 1);
                    uint64_t zz = v >> 1;
                    if (alloc && ev_number(&q, items_end, &size)) {
                        s->error = "EVENTS item cut short";
                        return MT_CORRUPT;
                    }
                    if (!apply) {
                        n_items++;
                        if (alloc ? !s->alloc_seen : !s->free_seen) {
                            s->error = alloc ? "EVENTS ALLOC before any ALLOC"
                                             : "EVENTS FREE before any FREE";
                            return MT_CORRUPT;
                        }
                        if (alloc && size > INT64_MAX) {
                            s->error = bad;
                            return MT_CORRUPT;
                        }
                        continue;
                    }
                    last += (zz >> 1) ^ ((uint64_t)0 - (zz & 1)); /* the zigzag's delta */
                    s->last_addr = last;
                    if (s->nodes_only) continue;
                    r = alloc ? on_alloc(s, s->alloc_thread, s->alloc_allocator, last, size,
                                         s->alloc_py, s->alloc_nat)
                              : on_free(s, s->free_thread, s->free_allocator, last, 0);
                    if (r) return r;
                }
            }
            s->records += n_items - (n_items > 0); /* each item counts as the record it is */
            break;
        }
        case MT_REC_FREE_SAME: {
            uint64_t addr;
            if (count != 2) {
                s->error = "FREE_SAME record has the wrong length";
                return MT_CORRUPT;
            }
            if (!s->free_seen) { s->error = "FREE_SAME before any FREE"; return MT_CORRUPT; }
            bad = "bad field in FREE_SAME record";
            READ(mp_addr(&p, end, &addr));
            if (s->ordinals && s->free_allocator != MT_MUNMAP) {
                addr = ordinal_free(s, addr);
            } else {
                addr += s->last_addr;
                s->last_addr = addr;
            }
            if (s->nodes_only) break;
            r = on_free(s, s->free_thread, s->free_allocator, addr, 0);
            if (r) return r;
            break;
        }
        case MT_REC_FREE: {
            uint64_t thread, allocator, addr, size;
            if (count != 5) { s->error = "FREE record has the wrong length"; return MT_CORRUPT; }
            bad = "bad field in FREE record";
            READ(mp_uint(&p, end, MT_MAX_ID, &thread));
            READ(mp_uint(&p, end, 255, &allocator));
            READ(mp_addr(&p, end, &addr));
            READ(mp_uint(&p, end, INT64_MAX, &size));
            if (allocator == 0) { s->error = "FREE with allocator 0"; return MT_CORRUPT; }
            if (s->ordinals && allocator != MT_MUNMAP) {
                addr = ordinal_free(s, addr);
            } else {
                addr += s->last_addr;
                s->last_addr = addr;
            }
            s->free_seen = 1;
            s->free_thread = thread;
            s->free_allocator = allocator;
            if (s->nodes_only) break;
            r = on_free(s, thread, allocator, addr, size);
            if (r) return r;
            break;
        }
        case MT_REC_PYNODE:
        case MT_REC_PYNODE_NEXT: {
            uint64_t id, parent, code;
            int64_t line;
            int big, entry;
            bad = "bad field in PYNODE record";
            if (t == MT_REC_PYNODE) {
                if (count != 6) {
                    s->error = "PYNODE record has the wrong length";
                    return MT_CORRUPT;
                }
                READ(mp_uint(&p, end, MT_MAX_ID, &id));
                READ(mp_uint(&p, end, MT_MAX_ID, &parent));
            } else {
                if (count != 5) {
                    s->error = "PYNODE_NEXT record has the wrong length";
                    return MT_CORRUPT;
                }
                READ(mp_uint(&p, end, MT_MAX_ID, &parent)); /* how far up the parent is */
                id = s->py_last + 1;
                if (parent == 0 || parent > id) {
                    s->error = "PYNODE_NEXT parent out of range";
                    return MT_CORRUPT;
                }
                parent = id - parent;
            }
            READ(mp_uint(&p, end, UINT64_MAX, &code));
            READ(mp_int(&p, end, &line, &big));
            READ(mp_bool(&p, end, &entry));
            if (id == 0 || id > s->py_count + MT_NODE_GAP || id > MT_MAX_ID) {
                s->error = "PYNODE id out of range";
                return MT_CORRUPT;
            }
            if (parent && (parent >= s->py_cap || !(s->py_flags[parent] & 1))) {
                s->error = "PYNODE parent is not defined";
                return MT_CORRUPT;
            }
            if (grow_py(s, id + 1)) return MT_NOMEM;
            if (s->py_flags[id] & 1) { s->error = "PYNODE defined twice"; return MT_CORRUPT; }
            s->py_parent[id] = (uint32_t)parent;
            s->py_code[id] = code;
            s->py_line[id] = big ? INT64_MAX : line;
            s->py_flags[id] = 1 | (entry ? 2 : 0);
            s->py_count++;
            s->py_last = id;
            break;
        }
        case MT_REC_NATIVENODE:
        case MT_REC_NATIVENODE_NEXT: {
            uint64_t id, parent, ip;
            bad = "bad field in NATIVENODE record";
            if (t == MT_REC_NATIVENODE) {
                if (count != 4) {
                    s->error = "NATIVENODE record has the wrong length";
                    return MT_CORRUPT;
                }
                READ(mp_uint(&p, end, MT_MAX_ID, &id));
                READ(mp_uint(&p, end, MT_MAX_ID, &parent));
            } else {
                if (count != 3) {
                    s->error = "NATIVENODE_NEXT record has the wrong length";
                    return MT_CORRUPT;
                }
                READ(mp_uint(&p, end, MT_MAX_ID, &parent));
                id = s->nat_last + 1;
                if (parent == 0 || parent > id) {
                    s->error = "NATIVENODE_NEXT parent out of range";
                    return MT_CORRUPT;
                }
                parent = id - parent;
            }
            READ(mp_addr(&p, end, &ip));
            if (id == 0 || id > s->nat_count + MT_NODE_GAP || id > MT_MAX_ID) {
                s->error = "NATIVENODE id out of range";
                return MT_CORRUPT;
            }
            if (parent && (parent >= s->nat_cap || !(s->nat_flags[parent] & 1))) {
                s->error = "NATIVENODE parent is not defined";
                return MT_CORRUPT;
            }
            if (grow_nat(s, id + 1)) return MT_NOMEM;
            if (s->nat_flags[id] & 1) {
                s->error = "NATIVENODE defined twice";
                return MT_CORRUPT;
            }
            s->nat_parent[id] = (uint32_t)parent;
            s->nat_ip[id] = ip;
            s->nat_flags[id] = 1;
            s->nat_count++;
            s->nat_last = id;
            break;
        }
        default:
            bad = "malformed msgpack in a record";
            READ(mp_skip(&p, end, count - 1));
            *type = (int)t;
            *rec_end = (size_t)(p - buf);
            return MT_OTHER;
        }
        *pos = (size_t)(p - buf);
        s->records++;
    }
    return MT_DONE;
}
