/* The capture file writer (see writer.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/file.h>
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

static int write_all(mt_capture *c, const uint8_t *data, size_t len) {
    while (len) {
        ssize_t n = write(c->fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail(c, errno);
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
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
        c->out_len = out.pos;
        if (ZSTD_isError(left)) return fail(c, EIO);
        if (mode == ZSTD_e_continue ? in->pos == in->size : left == 0) return 0;
    }
}

int mt_capture_open(mt_capture *c, int fd, uint64_t flush_ns, size_t block_bytes) {
    c->fd = fd;
    c->error = 0;
    c->pending = 0;
    c->out_len = 0;
    c->flush_ns = flush_ns ? flush_ns : MT_CAPTURE_FLUSH_NS;
    c->block_bytes = block_bytes ? block_bytes : MT_CAPTURE_BLOCK_BYTES;
    c->block_left = c->block_bytes;
    if (!c->out) c->out = malloc(MT_CAPTURE_OUT_CAP);
    if (!c->zc) c->zc = ZSTD_createCCtx();
    if (!c->out || !c->zc) return fail(c, ENOMEM);
    ZSTD_CCtx_reset(c->zc, ZSTD_reset_session_and_parameters);
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, MT_CAPTURE_LEVEL)))
        return fail(c, EINVAL);
    mt_capture_take_lock(fd);
    c->flushed_at = monotonic_ns();
    return write_all(c, (const uint8_t *)MT_COMPRESSED_MAGIC, MT_MAGIC_LEN);
}

int mt_capture_write(mt_capture *c, const void *data, size_t len) {
    const uint8_t *p = data;
    while (len) {
        size_t n = len < c->block_left ? len : c->block_left;
        ZSTD_inBuffer in = {p, n, 0};
        if (drive(c, &in, ZSTD_e_continue) < 0) return -1;
        c->pending = 1;
        p += n;
        len -= n;
        c->block_left -= n;
        if (c->block_left == 0) { /* close the block: a compression choice, nothing written */
            ZSTD_inBuffer none = {NULL, 0, 0};
            if (drive(c, &none, ZSTD_e_flush) < 0) return -1;
            c->block_left = c->block_bytes;
        }
    }
    return mt_capture_flush_due(c) ? mt_capture_flush(c) : (c->error ? -1 : 0);
}

int mt_capture_flush_due(const mt_capture *c) {
    return c->pending && !c->error && monotonic_ns() - c->flushed_at >= c->flush_ns;
}

int mt_capture_flush(mt_capture *c) {
    ZSTD_inBuffer in = {NULL, 0, 0};
    if (drive(c, &in, ZSTD_e_flush) < 0 || write_out(c) < 0) return -1;
    c->pending = 0;
    c->block_left = c->block_bytes;
    c->flushed_at = monotonic_ns();
    return 0;
}

int mt_capture_finish(mt_capture *c) {
    ZSTD_inBuffer in = {NULL, 0, 0};
    if (drive(c, &in, ZSTD_e_end) < 0 || write_out(c) < 0) return -1;
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
