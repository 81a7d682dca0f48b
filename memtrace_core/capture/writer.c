/* The capture file writer (see writer.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "format.h" /* the magic: memtrace_core/wire/format.h */
#include "writer.h"

static uint64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void mt_capture_take_lock(int fd) { (void)flock(fd, LOCK_EX | LOCK_NB); }

int mt_capture_writer_alive(int fd) {
    if (flock(fd, LOCK_SH | LOCK_NB) != 0) return errno == EWOULDBLOCK;
    (void)flock(fd, LOCK_UN);
    return 0;
}

static int fail(mt_capture *c, int err) {
    if (!c->error) c->error = err ? err : EIO;
    return -1;
}

static int writev_all(mt_capture *c, struct iovec *iov, int count) {
    while (count) {
        ssize_t n = writev(c->fd, iov, count);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail(c, errno);
        }
        while (count && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

static int write_all(mt_capture *c, const uint8_t *data, size_t len) {
    struct iovec one = {(void *)data, len};
    return len ? writev_all(c, &one, 1) : 0;
}

/* Write the compressed output held so far to the file. */
static int write_out(mt_capture *c) {
    if (c->error) return -1;
    size_t len = c->out_len;
    c->out_len = 0;
    return write_all(c, c->out, len);
}

/* Run the compressor over `in` (may be empty) with `mode`; its output is kept in memory
 * and written only when the buffer is full. */
static int drive(mt_capture *c, ZSTD_inBuffer *in, ZSTD_EndDirective mode) {
    if (c->error) return -1;
    for (;;) {
        if (c->out_len == MT_CAPTURE_OUT_CAP && write_out(c) < 0) return -1;
        ZSTD_outBuffer out = {c->out, MT_CAPTURE_OUT_CAP, c->out_len};
        size_t left = ZSTD_compressStream2(c->zc, &out, in, mode);
        c->zout += out.pos - c->out_len;
        c->out_len = out.pos;
        if (ZSTD_isError(left)) return fail(c, EIO);
        if (mode == ZSTD_e_continue ? in->pos == in->size : left == 0) return 0;
    }
}

/* ---- stored stretches: a zstd frame of Raw blocks (RFC 8878, 3.1.1) ---- */

/* Frame magic, a header descriptor with no content size, checksum or dictionary, and a
 * window of 128 KiB (exponent 7: 2^(10+7)), the size of the largest block. */
static const uint8_t raw_frame_header[6] = {0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38};
#define RAW_LAST_EMPTY 1u /* a block header: last block, type Raw, size 0 */

static void put_block_header(uint8_t *p, uint32_t value) {
    p[0] = (uint8_t)value;
    p[1] = (uint8_t)(value >> 8);
    p[2] = (uint8_t)(value >> 16);
}

/* Append len bytes to out (writing out first when they do not fit). */
static int out_append(mt_capture *c, const uint8_t *data, size_t len) {
    if (MT_CAPTURE_OUT_CAP - c->out_len < len && write_out(c) < 0) return -1;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

/* Close the stored block open in out: its header gets its size (an empty one is dropped). */
static void raw_close(mt_capture *c) {
    if (!c->raw_open) return;
    c->raw_open = 0;
    if (c->raw_len == 0) {
        c->out_len = c->raw_hdr;
        return;
    }
    put_block_header(c->out + c->raw_hdr, (uint32_t)c->raw_len << 3);
}

/* End the stored frame: its open block closed, then an empty last block. */
static int raw_end_frame(mt_capture *c) {
    static const uint8_t last[3] = {RAW_LAST_EMPTY, 0, 0};
    raw_close(c);
    return out_append(c, last, sizeof last);
}

/* A large piece: straight from the caller's buffer to the file, in blocks, after what out
 * holds (one writev per up to 16 blocks; the page cache copy is the only one). */
static int store_direct(mt_capture *c, const uint8_t *p, size_t n) {
    enum { BLOCKS = 16 };
    raw_close(c);
    while (n) {
        struct iovec iov[1 + 2 * BLOCKS];
        uint8_t headers[BLOCKS][3];
        int count = 0;
        if (c->out_len) iov[count++] = (struct iovec){c->out, c->out_len};
        for (int b = 0; b < BLOCKS && n; b++) {
            size_t k = n < MT_CAPTURE_RAW_BLOCK ? n : MT_CAPTURE_RAW_BLOCK;
            put_block_header(headers[b], (uint32_t)k << 3);
            iov[count++] = (struct iovec){headers[b], 3};
            iov[count++] = (struct iovec){(void *)p, k};
            p += k;
            n -= k;
        }
        c->out_len = 0;
        if (writev_all(c, iov, count) < 0) return -1;
    }
    c->pending = 0; /* everything so far is in the file */
    return 0;
}

/* Store n bytes of stream: small pieces are gathered in out, in blocks. */
static int store(mt_capture *c, const uint8_t *p, size_t n) {
    c->stored += n;
    if (n >= MT_CAPTURE_DIRECT_BYTES) return store_direct(c, p, n);
    while (n) {
        if (!c->raw_open) {
            if (MT_CAPTURE_OUT_CAP - c->out_len < 4 && write_out(c) < 0) return -1;
            c->raw_hdr = c->out_len;
            c->out_len += 3;
            c->raw_len = 0;
            c->raw_open = 1;
        }
        size_t room = MT_CAPTURE_RAW_BLOCK - c->raw_len;
        if (room > MT_CAPTURE_OUT_CAP - c->out_len) room = MT_CAPTURE_OUT_CAP - c->out_len;
        size_t k = n < room ? n : room;
        memcpy(c->out + c->out_len, p, k);
        c->out_len += k;
        c->raw_len += k;
        p += k;
        n -= k;
        if (c->raw_len == MT_CAPTURE_RAW_BLOCK || c->out_len == MT_CAPTURE_OUT_CAP) {
            raw_close(c);
            if (c->out_len == MT_CAPTURE_OUT_CAP && write_out(c) < 0) return -1;
        }
    }
    c->pending = 1;
    return 0;
}

static void judge_restart(mt_capture *c) {
    c->judge_in = 0;
    c->judge_zout = c->zout;
    c->judge_ns = monotonic_ns();
}

/* Compressed -> stored: end the compressed frame, begin a stored one. */
static int start_storing(mt_capture *c) {
    ZSTD_inBuffer none = {NULL, 0, 0};
    if (drive(c, &none, ZSTD_e_end) < 0) return -1;
    /* a failed probe waits twice as long for the next one; a stream that changed, the least */
    if (c->probing && c->probe_every < MT_CAPTURE_PROBE_MAX_BYTES) c->probe_every *= 2;
    else if (!c->probing) c->probe_every = MT_CAPTURE_PROBE_BYTES;
    c->probing = 0;
    c->probe_left = c->probe_every;
    c->storing = 1;
    return out_append(c, raw_frame_header, sizeof raw_frame_header);
}

/* Stored -> a probe: end the stored frame; the compressor begins a new frame. */
static int start_probe(mt_capture *c) {
    if (raw_end_frame(c) < 0) return -1;
    ZSTD_CCtx_reset(c->zc, ZSTD_reset_session_only);
    c->storing = 0;
    c->probing = 1;
    c->pending = 1;
    c->block_left = c->block_bytes;
    judge_restart(c);
    return 0;
}

/* After a block was closed: once a window of stream was compressed, store from now on if
 * it did not shrink enough and came fast (see writer.h). */
static int judge(mt_capture *c) {
    if (c->judge_in < MT_CAPTURE_JUDGE_BYTES) return 0;
    uint64_t zout = c->zout - c->judge_zout, now = monotonic_ns();
    int poor = c->store_ratio > 0 && c->judge_in < (uint64_t)c->store_ratio * zout;
    int fast = (double)c->judge_in * 1e9 >= MT_CAPTURE_STORE_RATE * (double)(now - c->judge_ns);
    judge_restart(c);
    if (poor && fast) return start_storing(c);
    c->probing = 0;
    return 0;
}

/* A sampled stream that came fast (MT_CAPTURE_SAMPLED_FAST_MIN bytes or more, at
 * MT_CAPTURE_SAMPLED_FAST_RATE or faster, counting `coming` bytes about to be written): end
 * the harder search's frame, go on at level 2 in a new one (writer.h). Asked before a write
 * too: a sampled run hands its records over every 250 ms, and its first batch then goes to
 * level 2 already (8 threads churning: a third of the stream was in the harder frame). */
static int maybe_ease(mt_capture *c, size_t coming) {
    uint64_t in = c->judge_in + coming;
    if (!c->harder || in < MT_CAPTURE_SAMPLED_FAST_MIN) return 0;
    uint64_t now = monotonic_ns();
    if ((double)in * 1e9 < MT_CAPTURE_SAMPLED_FAST_RATE * (double)(now - c->judge_ns)) return 0;
    ZSTD_inBuffer none = {NULL, 0, 0};
    if (drive(c, &none, ZSTD_e_end) < 0) return -1;
    c->harder = 0;
    ZSTD_CCtx_reset(c->zc, ZSTD_reset_session_and_parameters);
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, MT_CAPTURE_LEVEL)))
        return fail(c, EINVAL);
    return 0;
}

/* Close the compressed block in progress (into memory), then judge the window. */
static int close_block(mt_capture *c) {
    ZSTD_inBuffer none = {NULL, 0, 0};
    if (drive(c, &none, ZSTD_e_flush) < 0) return -1;
    c->block_left = c->block_bytes;
    if (maybe_ease(c, 0) < 0) return -1;
    return judge(c);
}

int mt_capture_open(mt_capture *c, int fd, uint64_t flush_ns, size_t block_bytes) {
    c->fd = fd;
    c->error = 0;
    c->pending = 0;
    c->out_len = 0;
    c->flush_ns = flush_ns ? flush_ns : MT_CAPTURE_FLUSH_NS;
    c->block_bytes = block_bytes ? block_bytes : MT_CAPTURE_BLOCK_BYTES;
    c->block_left = c->block_bytes;
    c->store_ratio = MT_CAPTURE_STORE_RATIO;
    c->storing = c->probing = c->raw_open = 0;
    c->raw_hdr = c->raw_len = 0;
    c->zout = c->stored = 0;
    c->probe_every = MT_CAPTURE_PROBE_BYTES;
    c->probe_left = 0;
    c->harder = 0;
    if (!c->out) c->out = malloc(MT_CAPTURE_OUT_CAP);
    if (!c->zc) c->zc = ZSTD_createCCtx();
    if (!c->out || !c->zc) return fail(c, ENOMEM);
    ZSTD_CCtx_reset(c->zc, ZSTD_reset_session_and_parameters);
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, MT_CAPTURE_LEVEL)))
        return fail(c, EINVAL);
    mt_capture_take_lock(fd);
    c->flushed_at = monotonic_ns();
    judge_restart(c);
    return write_all(c, (const uint8_t *)MT_COMPRESSED_MAGIC, MT_MAGIC_LEN);
}

int mt_capture_sampled(mt_capture *c) {
    static const struct {
        ZSTD_cParameter param;
        int value;
    } harder[] = {
        {ZSTD_c_strategy, ZSTD_lazy},
        {ZSTD_c_windowLog, MT_CAPTURE_SAMPLED_WINDOW_LOG},
        {ZSTD_c_hashLog, MT_CAPTURE_SAMPLED_TABLE_LOG},
        {ZSTD_c_chainLog, MT_CAPTURE_SAMPLED_TABLE_LOG},
        {ZSTD_c_searchLog, MT_CAPTURE_SAMPLED_SEARCH_LOG},
        {ZSTD_c_minMatch, 4},
    };
    if (c->error) return -1;
    c->harder = 1;
    /* a parameter this zstd refuses leaves the others (any mix is valid): not an error */
    int rc = 0;
    for (size_t i = 0; i < sizeof harder / sizeof harder[0]; i++)
        if (ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, harder[i].param, harder[i].value)))
            rc = -1;
    return rc;
}

int mt_capture_write(mt_capture *c, const void *data, size_t len) {
    const uint8_t *p = data;
    if (c->error) return -1;
    if (c->harder && !c->storing && maybe_ease(c, len) < 0) return -1;
    while (len) {
        if (c->storing) {
            size_t n = len < c->probe_left ? len : (size_t)c->probe_left;
            if (store(c, p, n) < 0) return -1;
            p += n;
            len -= n;
            c->probe_left -= n;
            if (c->probe_left == 0 && start_probe(c) < 0) return -1;
            continue;
        }
        size_t n = len < c->block_left ? len : c->block_left;
        ZSTD_inBuffer in = {p, n, 0};
        if (drive(c, &in, ZSTD_e_continue) < 0) return -1;
        c->pending = 1;
        p += n;
        len -= n;
        c->block_left -= n;
        c->judge_in += n;
        /* close the block: a compression choice, nothing written */
        if (c->block_left == 0 && close_block(c) < 0) return -1;
    }
    return mt_capture_flush_due(c) ? mt_capture_flush(c) : (c->error ? -1 : 0);
}

int mt_capture_flush_due(const mt_capture *c) {
    return c->pending && !c->error && monotonic_ns() - c->flushed_at >= c->flush_ns;
}

int mt_capture_flush(mt_capture *c) {
    if (c->error) return -1;
    if (c->storing) {
        raw_close(c);
    } else if (close_block(c) < 0) {
        return -1;
    }
    if (write_out(c) < 0) return -1;
    c->pending = 0;
    c->flushed_at = monotonic_ns();
    return 0;
}

int mt_capture_finish(mt_capture *c) {
    if (c->error) return -1;
    if (c->storing) {
        if (raw_end_frame(c) < 0) return -1;
    } else {
        ZSTD_inBuffer in = {NULL, 0, 0};
        if (drive(c, &in, ZSTD_e_end) < 0) return -1;
    }
    if (write_out(c) < 0) return -1;
    c->pending = 0;
    return 0;
}

void mt_capture_release(mt_capture *c) {
    ZSTD_freeCCtx(c->zc);
    free(c->out);
    c->zc = NULL;
    c->out = NULL;
    c->out_len = 0;
}
