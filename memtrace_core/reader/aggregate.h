/* Aggregation state of the reader and its hot decode loop (ALLOC/FREE/PYNODE/NATIVENODE),
 * kept in C so that a record costs no Python object: live allocations by address, stacks
 * interned to ids with per-stack counters, the peak snapshot, mmap ranges. */
#ifndef MEMTRACE_AGGREGATE_H
#define MEMTRACE_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "addrmap.h"
#include "format.h" /* record types and allocator codes: memtrace_core/wire/format.h */
#define MT_HIST_BUCKETS 66 /* bucket 0: size 0; bucket k+1: [2^k, 2^(k+1)) */

/* mt_decode results */
#define MT_DONE 0    /* every complete record consumed; *pos at the incomplete tail */
#define MT_OTHER 1   /* a record for the caller at *pos..*rec_end, its type in *type */
#define MT_CORRUPT (-1)
#define MT_NOMEM (-2)

#define MT_STACK_PEAK_DIRTY 1
#define MT_STACK_CHANGED 2

typedef struct {
    int64_t alloc_bytes, alloc_count, live_bytes, live_count, peak_bytes, peak_count;
    int64_t temp_bytes, temp_count; /* temporary allocations (see mt_state.recent) */
    /* Address space reserved here and still mapped (MMAP_RESERVE): not heap, never in the
     * counters above. */
    int64_t reserved_bytes, reserved_count;
    uint32_t py, nat, thread, flags;
} mt_stack;

#define MT_TEMP_DEFAULT 1        /* memray's and heaptrack's default threshold */
#define MT_TEMP_MAX 65535        /* the largest threshold accepted */

/* A piece of an mmap allocation: [start, end); a partial munmap may split one in two.
 * `reserved`: a piece of a reservation (MMAP_RESERVE), which counts apart from the heap. */
typedef struct {
    uint64_t start, end;
    uint32_t sid, mapping, reserved;
} mt_piece;

typedef struct {
    /* Python trie: index = node id */
    uint32_t *py_parent;
    uint64_t *py_code;
    int64_t *py_line;
    uint8_t *py_flags; /* 1: defined, 2: is_entry */
    size_t py_cap;
    uint64_t py_count; /* nodes defined */
    uint64_t py_last;  /* the id of the last node defined (PYNODE_NEXT numbers after it) */
    /* native trie */
    uint32_t *nat_parent;
    uint64_t *nat_ip;
    uint8_t *nat_flags;
    size_t nat_cap;
    uint64_t nat_count;
    uint64_t nat_last;

    mt_stack *stacks;
    size_t n_stacks, stacks_cap;
    mt_stackmap stackmap;
    uint32_t last_py, last_nat, last_thread, last_sid;
    uint32_t *peak_dirty; /* sids changed since the last peak snapshot */
    size_t n_peak_dirty;
    uint32_t *changed; /* sids changed since the last take_changed() */
    size_t n_changed;

    mt_addrmap live;
    mt_piece *pieces; /* sorted by start, disjoint */
    size_t n_pieces, pieces_cap;
    uint32_t *mapping_pieces; /* per mmap allocation: pieces still mapped */
    size_t n_mappings, mappings_cap;

    int64_t total_bytes, total_allocs, total_frees, ignored_frees, implicit_frees;
    int64_t heap_bytes, heap_allocs, peak_bytes, peak_allocs, peak_time_us, last_time_us;
    /* The first TICK's time after the peak (-1 until one comes): the peak was reached
     * between peak_time_us (the TICK before it) and this; ~250 ms apart in a sampled
     * capture, whose records carry no time of their own. */
    int64_t peak_by_us;
    int64_t allocator_count[256], allocator_bytes[256];
    /* Reservations of address space (MMAP_RESERVE: docs/FORMAT.md),
     * apart from the heap: still mapped now (bytes, mappings), the most bytes at once, and
     * all ever made. */
    int64_t reserved_bytes, reserved_count, reserved_peak, reserved_total_bytes,
        reserved_total_count;
    int64_t hist[MT_HIST_BUCKETS];
    int64_t records;
    /* Temporary allocations: one freed by its own thread before that thread made more than
     * temp_threshold other allocations. Per thread index, a ring of the addresses of its
     * last temp_threshold + 1 allocations (an address is cleared when its free is seen). */
    uint64_t *recent;
    uint32_t *recent_at; /* per thread: next slot of its ring */
    size_t recent_threads;
    uint32_t temp_threshold;
    int64_t temp_bytes, temp_allocs;
    int header_seen, trailer_seen;
    const char *error;
    uint64_t last_addr; /* ALLOC/FREE addresses are deltas from the previous one */
    int format;         /* HEADER's format: 2 adds ALLOC_SAME and FREE_SAME, 3 MAPS_DELTA */
    int nodes_only;     /* decode ALLOC/FREE without counting them: the stack tries alone */
    /* The previous ALLOC's and FREE's fields, which ALLOC_SAME and FREE_SAME repeat. */
    int alloc_seen, free_seen;
    uint64_t alloc_thread, alloc_allocator, alloc_py, alloc_nat, free_thread, free_allocator;
    /* A sampled capture (HEADER sample_bytes, set before the first ALLOC): its mean, and
     * the fraction of an allocation count estimated but not yet counted. */
    double sample_mean, count_carry;
    /* A sampled capture of format 5 on: heap ALLOCs carry no address but an ordinal (counted
     * here), and their FREEs name them by it (docs/FORMAT.md, "Sampled captures"); set with
     * sample_mean. Their live blocks are keyed by ordinal. */
    int ordinals;
    uint64_t next_ordinal;
    /* A sampled capture of format 7 on: every full ALLOC record's context (thread,
     * allocator, pynode, nativenode), in stream order, which ALLOC_AGAIN names. */
    struct mt_alloc_ctx { uint32_t thread, allocator, py, nat; } *ctxs;
    size_t n_ctxs, ctx_cap;
} mt_state;

int mt_state_init(mt_state *s);
void mt_state_free(mt_state *s);
/* Decode records from buf[*pos, n); see the MT_* results above. */
int mt_decode(mt_state *s, const uint8_t *buf, size_t n, size_t *pos, int *type,
              size_t *rec_end);
/* Set the threshold of temporary allocations; -1 once ALLOC records were read, or too big. */
int mt_set_temp_threshold(mt_state *s, uint32_t n);
/* Copy live counters of changed stacks into their peak snapshot (called on a new peak). */
void mt_take_peak(mt_state *s);

#endif
