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
