/* Bounds-checked readers for the msgpack subset of the memtrace wire format.
 *
 * Every reader takes a cursor (*p) and the end of the buffer, and returns
 *   MP_OK    the value was read and *p moved past it,
 *   MP_MORE  the buffer ends inside the value (*p untouched): wait for more bytes,
 *   MP_BAD   the bytes cannot be this value (wrong type or a byte msgpack never uses).
 * Nothing here allocates or touches Python objects: it runs once per record.
 */
#ifndef MEMTRACE_READER_MPACK_H
#define MEMTRACE_READER_MPACK_H

#include <stddef.h>
#include <stdint.h>

#define MP_OK 0
#define MP_MORE 1
#define MP_BAD (-1)

static inline uint64_t mp_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* Any integer, as a signed 64-bit value; *is_big is set when it is a uint64 above INT64_MAX
 * (then *out holds its bits). */
static inline int mp_int(const uint8_t **pp, const uint8_t *end, int64_t *out, int *is_big)
{
    const uint8_t *p = *pp;
    if (p >= end) return MP_MORE;
    uint8_t b = *p;
    *is_big = 0;
    if (b <= 0x7f) { *out = b; *pp = p + 1; return MP_OK; }
    if (b >= 0xe0) { *out = (int8_t)b; *pp = p + 1; return MP_OK; }
    int n;
    int sign;
    switch (b) {
    case 0xcc: n = 1; sign = 0; break;
    case 0xcd: n = 2; sign = 0; break;
    case 0xce: n = 4; sign = 0; break;
    case 0xcf: n = 8; sign = 0; break;
    case 0xd0: n = 1; sign = 1; break;
    case 0xd1: n = 2; sign = 1; break;
    case 0xd2: n = 4; sign = 1; break;
    case 0xd3: n = 8; sign = 1; break;
    default: return MP_BAD;
    }
    if (end - p < 1 + n) return MP_MORE;
    uint64_t v = mp_be(p + 1, n);
    if (sign) {
        if (n < 8) {
            uint64_t m = 1ULL << (8 * n - 1);
            v = (v ^ m) - m; /* sign-extend */
        }
        *out = (int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) *is_big = 1;
        *out = (int64_t)v;
    }
    *pp = p + 1 + n;
    return MP_OK;
}

/* A non-negative integer that fits in max. */
static inline int mp_uint(const uint8_t **pp, const uint8_t *end, uint64_t max, uint64_t *out)
{
    const uint8_t *p = *pp;
    if (p < end && *p <= 0x7f) { *out = *p; *pp = p + 1; return *out <= max ? MP_OK : MP_BAD; }
    int64_t v;
    int big;
    int r = mp_int(pp, end, &v, &big);
    if (r != MP_OK) return r;
    if (big || v < 0 || (uint64_t)v > max) { *pp = p; return MP_BAD; }
    *out = (uint64_t)v;
    return MP_OK;
}

/* An address: uint64, or a negative int64 taken as its two's-complement bits. */
static inline int mp_addr(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    int64_t v;
    int big;
    int r = mp_int(pp, end, &v, &big);
    if (r == MP_OK) *out = (uint64_t)v;
    return r;
}

/* A boolean (also accepts the integers 0 and 1). */
static inline int mp_bool(const uint8_t **pp, const uint8_t *end, int *out)
{
    const uint8_t *p = *pp;
    if (p >= end) return MP_MORE;
    if (*p == 0xc2 || *p == 0x00) { *out = 0; *pp = p + 1; return MP_OK; }
    if (*p == 0xc3 || *p == 0x01) { *out = 1; *pp = p + 1; return MP_OK; }
    return MP_BAD;
}

/* Array header: *count elements follow. */
static inline int mp_array(const uint8_t **pp, const uint8_t *end, uint64_t *count)
{
    const uint8_t *p = *pp;
    if (p >= end) return MP_MORE;
    uint8_t b = *p;
    if ((b & 0xf0) == 0x90) { *count = b & 0x0f; *pp = p + 1; return MP_OK; }
    int n;
    if (b == 0xdc) n = 2;
    else if (b == 0xdd) n = 4;
    else return MP_BAD;
    if (end - p < 1 + n) return MP_MORE;
    *count = mp_be(p + 1, n);
    *pp = p + 1 + n;
    return MP_OK;
}

/* Bin header: *len payload bytes follow (not checked to be there). */
static inline int mp_bin(const uint8_t **pp, const uint8_t *end, uint64_t *len)
{
    const uint8_t *p = *pp;
    if (p >= end) return MP_MORE;
    int n;
    if (*p == 0xc4) n = 1;
    else if (*p == 0xc5) n = 2;
    else if (*p == 0xc6) n = 4;
    else return MP_BAD;
    if (end - p < 1 + n) return MP_MORE;
    *len = mp_be(p + 1, n);
    *pp = p + 1 + n;
    return MP_OK;
}

/* A number of an EVENTS item (memtrace_core/wire/format.h): 0, or 1 when the bytes end
 * inside it (the bin is whole when this is called: that is damage). */
static inline int ev_number(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    if (p >= end) return 1;
    unsigned len = p[0] ? (unsigned)__builtin_ctz(p[0]) + 1 : 9;
    if ((uint64_t)(end - p) < len) return 1;
    uint64_t v = 0;
    if (len == 9) {
        for (int i = 8; i >= 1; i--) v = v << 8 | p[i];
    } else {
        for (int i = (int)len - 1; i >= 0; i--) v = v << 8 | p[i];
        v >>= len;
    }
    *out = v;
    *pp = p + len;
    return 0;
}

/* Skip `items` complete values (iteratively: no recursion, so nesting depth cannot
 * exhaust the C stack). */
static inline int mp_skip(const uint8_t **pp, const uint8_t *end, uint64_t items)
{
    const uint8_t *p = *pp;
    uint64_t left = items;
    while (left) {
        if (p >= end) return MP_MORE;
        uint8_t b = *p;
        uint64_t len = 0; /* payload bytes after the header */
        uint64_t hdr = 1;
        uint64_t add = 0; /* nested values */
        left--;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if ((b & 0xe0) == 0xa0) {
            len = b & 0x1f;
        } else if ((b & 0xf0) == 0x90) {
            add = b & 0x0f;
        } else if ((b & 0xf0) == 0x80) {
            add = 2ULL * (b & 0x0f);
        } else {
            int n;
            switch (b) {
            case 0xcc: case 0xd0: len = 1; break;
            case 0xcd: case 0xd1: len = 2; break;
            case 0xce: case 0xd2: case 0xca: len = 4; break;
            case 0xcf: case 0xd3: case 0xcb: len = 8; break;
            case 0xd9: case 0xc4: n = 1; goto sized;
            case 0xda: case 0xc5: n = 2; goto sized;
            case 0xdb: case 0xc6: n = 4; goto sized;
            case 0xdc: n = 2; goto container;
            case 0xdd: n = 4; goto container;
            case 0xde: n = 2; goto container;
            case 0xdf: n = 4; goto container;
            default: return MP_BAD; /* ext types, 0xc1 */
            sized:
                if ((uint64_t)(end - p) < 1 + (uint64_t)n) return MP_MORE;
                hdr = 1 + n;
                len = mp_be(p + 1, n);
                break;
            container:
                if ((uint64_t)(end - p) < 1 + (uint64_t)n) return MP_MORE;
                hdr = 1 + n;
                add = mp_be(p + 1, n);
                if (b >= 0xde) add *= 2;
                break;
            }
        }
        if ((uint64_t)(end - p) < hdr + len) return MP_MORE;
        p += hdr + len;
        left += add; /* at most 2 * 2^32 per value: cannot overflow before bytes run out */
    }
    *pp = p;
    return MP_OK;
}

#endif
