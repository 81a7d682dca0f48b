/* The wire format, defined once (docs/FORMAT.md): magics, version, record types and
 * allocator codes. The tracer writes with these names (tracer/recorder.c), the reader reads
 * with them (reader/aggregate.c, reader/_reader.pyx through format.pxd), and the reader's
 * Python constants (memtrace_core.reader.ALLOCATOR_NAMES) come from here, so the two sides
 * cannot disagree. */
#ifndef MEMTRACE_WIRE_FORMAT_H
#define MEMTRACE_WIRE_FORMAT_H

#define MT_MAGIC "MEMTRACE"            /* a plain stream (pipe, FIFO, raw file) */
#define MT_COMPRESSED_MAGIC "MEMTRACZ" /* a capture file: then zstd frames of a stream */
#define MT_MAGIC_LEN 8
#define MT_FORMAT_VERSION 9            /* HEADER's `format`; readers read 1 to this */
/* The first format whose sampled captures name heap allocations by ordinal, not address. */
#define MT_FORMAT_SAMPLED_ORDINALS 5

/* The record type: the first element of every record's msgpack array. */
enum mt_record_type {
    MT_REC_HEADER = 0, MT_REC_CODE = 1, MT_REC_PYNODE = 2, MT_REC_NATIVENODE = 3,
    MT_REC_ALLOC = 4, MT_REC_FREE = 5, MT_REC_THREAD = 6, MT_REC_MAPS = 7, MT_REC_TICK = 8,
    MT_REC_TRAILER = 9,
    /* format 2: an ALLOC or FREE repeating the previous one's other fields */
    MT_REC_ALLOC_SAME = 10, MT_REC_FREE_SAME = 11,
    /* format 3: the objects loaded and unloaded since the previous MAPS or MAPS_DELTA */
    MT_REC_MAPS_DELTA = 12,
    /* format 6: a stack trie node numbered after the previous one, its parent as a distance */
    MT_REC_PYNODE_NEXT = 13, MT_REC_NATIVENODE_NEXT = 14,
    /* format 7, sampled captures: an ALLOC in the context of an earlier full ALLOC record */
    MT_REC_ALLOC_AGAIN = 15,
    /* format 9, exact captures: ALLOC_SAMEs and FREE_SAMEs packed in one bin (EVENTS) */
    MT_REC_EVENTS = 16,
};
#define MT_REC_LAST MT_REC_EVENTS
/* The first format with each record type beyond TRAILER (readers reject it in older ones). */
#define MT_REC_FORMAT(t)                                                                     \
    ((t) >= MT_REC_EVENTS ? 9 : (t) >= MT_REC_ALLOC_AGAIN ? 7 : (t) >= MT_REC_PYNODE_NEXT ? 6 \
     : (t) == MT_REC_MAPS_DELTA ? 3 : (t) > MT_REC_TRAILER ? 2 : 1)

/* Allocator codes (ALLOC/FREE's `allocator` field): X(enum suffix, code, name). */
#define MT_ALLOCATORS(X)                                                                    \
    X(MALLOC, 1, "malloc") X(CALLOC, 2, "calloc") X(REALLOC, 3, "realloc")                  \
    X(POSIX_MEMALIGN, 4, "posix_memalign") X(ALIGNED_ALLOC, 5, "aligned_alloc")             \
    X(MEMALIGN, 6, "memalign") X(VALLOC, 7, "valloc") X(PVALLOC, 8, "pvalloc")              \
    X(MMAP, 9, "mmap") X(FREE, 10, "free") X(MUNMAP, 11, "munmap")                          \
    X(REALLOCARRAY, 12, "reallocarray") X(PYMALLOC_MALLOC, 13, "pymalloc_malloc")           \
    X(PYMALLOC_CALLOC, 14, "pymalloc_calloc") X(PYMALLOC_REALLOC, 15, "pymalloc_realloc")   \
    X(PYMALLOC_FREE, 16, "pymalloc_free") X(PYMEM_RAW_MALLOC, 17, "pymem_raw_malloc")       \
    X(PYMEM_RAW_CALLOC, 18, "pymem_raw_calloc")                                             \
    X(PYMEM_RAW_REALLOC, 19, "pymem_raw_realloc") X(PYMEM_RAW_FREE, 20, "pymem_raw_free")   \
    X(MMAP_RESERVE, 21, "mmap_reserve") /* format 8 */

#define MT_ALLOCATOR_ENUM_(suffix, code, name) MT_##suffix = code,
enum mt_allocator { MT_ALLOCATORS(MT_ALLOCATOR_ENUM_) };
#undef MT_ALLOCATOR_ENUM_
#define MT_ALLOCATOR_LAST 21
/* A mapping (mmap, or a reservation of address space): munmap takes its ranges back, and it
 * is never sampled. */
#define MT_IS_MAPPING(a) ((a) == MT_MMAP || (a) == MT_MMAP_RESERVE)

/* EVENTS (docs/FORMAT.md): a bin of at most MT_EVENTS_BYTES bytes of items, each a number
 * (zigzag of the address delta, shifted left once, | 1 for an ALLOC), an ALLOC's then its
 * size. A number takes 1 to 8 bytes, little-endian: the first byte's trailing zero bits, plus
 * one, are its length, and the value is the rest shifted right by that; a first byte of 0
 * is followed by the 8 bytes of a value of more than 56 bits. */
#define MT_EVENTS_BYTES 255
#define MT_EVENTS_ITEM_MAX 18 /* bytes an item takes at most: two 9-byte numbers */

/* The allocator's name, or NULL for a code that is not one. */
static inline const char *mt_allocator_name(int code) {
#define MT_ALLOCATOR_CASE_(suffix, code_, name) case code_: return name;
    switch (code) { MT_ALLOCATORS(MT_ALLOCATOR_CASE_) default: return 0; }
#undef MT_ALLOCATOR_CASE_
}

#endif
