/* The capture file writer, the only one: `memtrace run` (the tracer's writer thread,
 * tracer/recorder.c) and `live -o` / `attach -o` / a capture made portable (through
 * _writer.pyx) all write capture files with it (docs/FORMAT.md, "Layout").
 *
 * A capture file is the magic "MEMTRACZ" then one zstd frame whose content is the plain
 * stream. It owns:
 * - the container: the magic, the frame, its compression parameters (level 2: 2-3x faster
 *   than zlib -1 on our streams with smaller output; 20% smaller than level 1 on the
 *   address deltas at the same speed);
 * - the flush policy, two decisions apart:
 *   - a zstd block is closed after every MT_CAPTURE_BLOCK_BYTES of stream, zstd's full
 *     128 KiB: 32 KiB blocks compressed a Python program's stream 2-7% smaller (fresh
 *     entropy tables for each stretch of it) but cost the 11 M malloc/free benchmark 2-3.5%
 *     more CPU in all (bench_run), and malloc-heavy code is where the speed targets are
 *     missed. A compression choice only: the compressed output stays in memory;
 *   - the file is written (everything so far made readable) at most MT_CAPTURE_FLUSH_NS
 *     after data came, busy or idle, when the output buffer is full, and at the end (exit,
 *     detach, SIGTERM: finish). A file cut off mid-run (the program killed, a follower
 *     reading it now) reads up to its last flush, never more than that interval behind.
 *     Closing a block every 10 ms instead cost a short sampled capture a fifth of its size;
 * - the lock: a writer holds an exclusive flock on the file while it writes; followers
 *   (`view --follow`) test it to tell "no new bytes yet" from "the writer is gone".
 *
 * Nothing here touches Python: the tracer calls it from its writer thread, the Cython face
 * without the GIL. One writer per mt_capture, from one thread at a time. */
#ifndef MEMTRACE_CAPTURE_WRITER_H
#define MEMTRACE_CAPTURE_WRITER_H

#include <stddef.h>
#include <stdint.h>

#define MT_CAPTURE_LEVEL 2
#define MT_CAPTURE_FLUSH_NS 100000000ULL /* 100 ms: what a cut-off file may lose at most */
#define MT_CAPTURE_BLOCK_BYTES (128u << 10) /* stream bytes per zstd block */
#define MT_CAPTURE_OUT_CAP (256u << 10)    /* compressed bytes held before a write */

typedef struct {
    int fd;
    int error;           /* errno of the first failure (0: none); every call fails after it */
    int pending;         /* input taken since the last flush, not readable from the file yet */
    size_t block_left;   /* stream bytes until the current block is closed */
    size_t block_bytes;  /* stream bytes per block */
    uint64_t flush_ns;   /* the flush interval */
    uint64_t flushed_at; /* CLOCK_MONOTONIC ns of the last flush (or of the open) */
    struct ZSTD_CCtx_s *zc; /* the compressor (zstd.h's ZSTD_CCtx), kept for the next capture */
    uint8_t *out;        /* compressed output not written yet ... */
    size_t out_len;      /* ... this much of it */
} mt_capture;

/* Mark fd's file as being written (an exclusive flock, released when the last descriptor of
 * that open file is closed or its process dies). Another writer already holding it, or a
 * file system without locks, is not an error: followers then rely on the data alone. */
void mt_capture_take_lock(int fd);
/* 1 when some process holds the writer's lock on fd's file, else 0. */
int mt_capture_writer_alive(int fd);

/* Start a capture on fd (the caller's to close): take the lock, write the magic, begin the
 * frame. flush_ns 0: MT_CAPTURE_FLUSH_NS; block_bytes 0: MT_CAPTURE_BLOCK_BYTES. A zeroed
 * mt_capture, or one used before (its context is reused). 0 or -1 (c->error says why). */
int mt_capture_open(mt_capture *c, int fd, uint64_t flush_ns, size_t block_bytes);
/* Compress len bytes of the plain stream into the file; flushes when the interval is up. */
int mt_capture_write(mt_capture *c, const void *data, size_t len);
/* Whether input waits for a flush that is due now (cheap: call it when idle) ... */
int mt_capture_flush_due(const mt_capture *c);
/* ... and the flush: everything written so far becomes readable from the file. */
int mt_capture_flush(mt_capture *c);
/* End the frame (the file is complete; fd stays open). Nothing may be written after it. */
int mt_capture_finish(mt_capture *c);
/* Free the context and buffer (after finish, or to abandon a capture). */
void mt_capture_release(mt_capture *c);

#endif
