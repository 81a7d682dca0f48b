/* Tiny msgpack encoder for the tracer's records: writes into a caller-sized byte buffer.
 * Only what the wire format needs (docs/FORMAT.md). No allocation, no Python. */
#ifndef MEMTRACE_TRACER_MPACK_H
#define MEMTRACE_TRACER_MPACK_H

#include <stdint.h>
#include <string.h>

static inline uint8_t *mp_u8(uint8_t *p, uint8_t v) { *p++ = v; return p; }

static inline uint8_t *mp_be16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; return p + 2;
}
static inline uint8_t *mp_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
    return p + 4;
}
static inline uint8_t *mp_be64(uint8_t *p, uint64_t v) {
    p = mp_be32(p, (uint32_t)(v >> 32)); return mp_be32(p, (uint32_t)v);
}

/* Unsigned integer in the smallest msgpack form (at most 9 bytes). */
static inline uint8_t *mp_uint(uint8_t *p, uint64_t v) {
    if (v < 128) return mp_u8(p, (uint8_t)v);
    if (v <= 0xff) { p = mp_u8(p, 0xcc); return mp_u8(p, (uint8_t)v); }
    if (v <= 0xffff) { p = mp_u8(p, 0xcd); return mp_be16(p, (uint16_t)v); }
    if (v <= 0xffffffffULL) { p = mp_u8(p, 0xce); return mp_be32(p, (uint32_t)v); }
    p = mp_u8(p, 0xcf); return mp_be64(p, v);
}

/* Signed integer (exit codes, address deltas) in its smallest form. */
static inline uint8_t *mp_int(uint8_t *p, int64_t v) {
    if (v >= 0) return mp_uint(p, (uint64_t)v);
    if (v >= -32) return mp_u8(p, (uint8_t)(int8_t)v);
    if (v >= INT8_MIN) { p = mp_u8(p, 0xd0); return mp_u8(p, (uint8_t)(int8_t)v); }
    if (v >= INT16_MIN) { p = mp_u8(p, 0xd1); return mp_be16(p, (uint16_t)(int16_t)v); }
    if (v >= INT32_MIN) { p = mp_u8(p, 0xd2); return mp_be32(p, (uint32_t)(int32_t)v); }
    p = mp_u8(p, 0xd3); return mp_be64(p, (uint64_t)v);
}

/* The same bytes as mp_uint / mp_int, without a chain of compares: the hot records' address
 * deltas go up and down at random, and mp_int's compares mispredicted about once a record
 * (a dozen cycles each, on every ALLOC and FREE). One branch stays, for the one-byte forms.
 * Writes up to 9 bytes past p whatever the form: the caller's room must allow it. */
static inline uint8_t *mp_store_be(uint8_t *p, uint8_t header, uint64_t v, unsigned cls) {
    /* cls 0..3: 1, 2, 4 or 8 bytes of v, big-endian, after the header */
    uint64_t be = __builtin_bswap64(v << (64 - (8u << cls)));
    p[0] = header;
    memcpy(p + 1, &be, 8);
    return p + 1 + (1u << cls);
}

/* The class (0..3: 1, 2, 4 or 8 bytes) of a value whose highest bit is bit `top` (0..63):
 * floor(log2(top)) less 2, and 0 up to bit 7 (the `| 4`): one bit scan where three compares
 * and their adds were (a drained record's encoding: 111 instructions to 98, callgrind). */
static inline unsigned mp_width_class_top(unsigned top) {
    return (unsigned)(31 - __builtin_clz(top | 4)) - 2u;
}

static inline uint8_t *mp_uint_fast(uint8_t *p, uint64_t v) {
    if (v < 128) return mp_u8(p, (uint8_t)v);
    unsigned cls = mp_width_class_top(63u - (unsigned)__builtin_clzll(v));
    return mp_store_be(p, (uint8_t)(0xcc + cls), v, cls);
}

static inline uint8_t *mp_int_fast(uint8_t *p, int64_t v) {
    uint64_t u = (uint64_t)v;
    if (u + 32 < 160) return mp_u8(p, (uint8_t)u); /* -32..127: one byte */
    uint64_t neg = (uint64_t)(v >> 63);           /* all ones when negative */
    uint64_t mag = u ^ neg;                       /* v, or -v - 1: the bits beside the sign */
    /* the top bit of the value with its sign bit: one above mag's when negative */
    unsigned top = 63u - (unsigned)__builtin_clzll(mag | 1) + (unsigned)(neg & 1);
    unsigned cls = mp_width_class_top(top);
    /* non-negative: uint 8/16/32/64 (0xcc..0xcf), as mp_int; negative: int (0xd0..0xd3) */
    return mp_store_be(p, (uint8_t)(0xcc + cls + (unsigned)(neg & 4)), u, cls);
}

static inline uint8_t *mp_array(uint8_t *p, uint32_t n) {
    if (n < 16) return mp_u8(p, (uint8_t)(0x90 | n));
    if (n <= 0xffff) { p = mp_u8(p, 0xdc); return mp_be16(p, (uint16_t)n); }
    p = mp_u8(p, 0xdd); return mp_be32(p, n);
}

static inline uint8_t *mp_nil(uint8_t *p) { return mp_u8(p, 0xc0); }
static inline uint8_t *mp_bool(uint8_t *p, int v) { return mp_u8(p, v ? 0xc3 : 0xc2); }

static inline uint8_t *mp_double(uint8_t *p, double d) {
    uint64_t bits; memcpy(&bits, &d, 8);
    p = mp_u8(p, 0xcb); return mp_be64(p, bits);
}

/* Header of a str of n UTF-8 bytes (at most 5 bytes). */
static inline uint8_t *mp_str_header(uint8_t *p, uint32_t n) {
    if (n < 32) return mp_u8(p, (uint8_t)(0xa0 | n));
    if (n <= 0xff) { p = mp_u8(p, 0xd9); return mp_u8(p, (uint8_t)n); }
    if (n <= 0xffff) { p = mp_u8(p, 0xda); return mp_be16(p, (uint16_t)n); }
    p = mp_u8(p, 0xdb); return mp_be32(p, n);
}

static inline uint8_t *mp_str(uint8_t *p, const char *s, uint32_t n) {
    p = mp_str_header(p, n); memcpy(p, s, n); return p + n;
}

#endif
