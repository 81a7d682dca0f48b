/* The capture file writer, the only one: `memtrace run` (the tracer's writer thread,
 * tracer/recorder.c) and `live -o` / `attach -o` / a capture made portable (through
 * _writer.pyx) all write capture files with it (docs/FORMAT.md, "Layout").
 *
 * A capture file is the magic "MEMTRACZ" then zstd frames whose contents, one after the
 * other, are the plain stream. It owns:
 * - the container: the magic, the frames, their compression parameters (level 2: 2-3x
 *   faster than zlib -1 on our streams with smaller output; 20% smaller than level 1 on the
 *   address deltas at the same speed);
 * - what is compressed and what is stored. Compression costs the writer's thread ~3.6 ns
 *   per stream byte at level 2 (an EPYC core): a Python program's stream shrinks 6-15x for
 *   it, but the stream of malloc-heavy C code (random sizes and addresses) shrinks only
 *   1.6-2.2x, and comes at 80+ MB/s: compressing it cost ~0.7 s of CPU on a 1 s untraced
 *   run, more than the whole tracer. So the stream is judged every MT_CAPTURE_JUDGE_BYTES:
 *   when it shrank less than MT_CAPTURE_STORE_RATIO and came faster than
 *   MT_CAPTURE_STORE_RATE, the compressed frame is ended and the stream is *stored*: a zstd
 *   frame of Raw blocks (RFC 8878) that any zstd decoder reads, written from the caller's
 *   buffer without a copy when the piece is large. After MT_CAPTURE_PROBE_BYTES of stored
 *   stream a probe compresses the next window in a new frame and judges it again: a stream
 *   that became compressible stays compressed; each failed probe doubles the distance to
 *   the next one, up to MT_CAPTURE_PROBE_MAX_BYTES (a probe costs one window's compression).
 *   A compressible stream is never interrupted: one frame, its history kept, as before;
 *   slow streams (sampled captures) stay compressed whatever their ratio;
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
 *     Closing a block every 10 ms instead cost a short sampled capture a fifth of its size.
 *     Stored stretches are written at once when they come in large pieces;
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
/* A sampled capture's stream comes slowly (kilobytes a second) and is made of random picks
 * that level 2 compresses poorly: its compressor searches harder (zstd's lazy strategy, six
 * probes a position, a 1 MiB window, tables of 2^16: a 1.4 MB context) for a third fewer
 * bytes at about 15 ns a stream byte (1.4 ms for numpy's one-second benchmark). */
#define MT_CAPTURE_SAMPLED_WINDOW_LOG 20
#define MT_CAPTURE_SAMPLED_TABLE_LOG 16
#define MT_CAPTURE_SAMPLED_SEARCH_LOG 6
/* ... unless it comes fast: a sampled stream that brought MT_CAPTURE_SAMPLED_FAST_MIN bytes
 * or more at this rate or faster (bytes/s), asked at every write (those bytes counted) and
 * when a block is closed, ends its frame there and goes on in a new one at level 2.
 * Malloc-heavy C code sends ~400 KB/s sampled at 512 KiB (bench_run's malloc/free: 388 KB,
 * which the harder search took 9.2 ms to compress, level 2 1.2 ms, to 4% fewer bytes); at
 * this rate the harder search costs 0.5% of a core. numpy's benchmark sends ~170 KB/s on an
 * idle EPYC core, for which the harder search pays (a third fewer bytes): at 128 KiB/s it
 * went on at level 2 in some runs, and its sampled --native capture came out 21 KB, not
 * 16-18 KB. */
#define MT_CAPTURE_SAMPLED_FAST_RATE 327680.0
#define MT_CAPTURE_SAMPLED_FAST_MIN (64u << 10) /* a shorter one costs ~1 ms harder */
#define MT_CAPTURE_FLUSH_NS 100000000ULL /* 100 ms: what a cut-off file may lose at most */
#define MT_CAPTURE_BLOCK_BYTES (128u << 10) /* stream bytes per zstd block */
#define MT_CAPTURE_OUT_CAP (256u << 10)    /* compressed bytes held before a write */
/* Compressing or storing: see above. The stream is judged over this many bytes ... */
#define MT_CAPTURE_JUDGE_BYTES (1u << 20)
/* ... and stored when it shrank less than this (stream : compressed; 0: never store) ... */
#define MT_CAPTURE_STORE_RATIO 3
/* ... and came at least this fast (bytes/s: compressing it takes 1.5% of a core or more) */
#define MT_CAPTURE_STORE_RATE 4000000.0
#define MT_CAPTURE_PROBE_BYTES (8u << 20)      /* stored stream before the first probe */
#define MT_CAPTURE_PROBE_MAX_BYTES (64u << 20) /* ... doubled after each failed probe */
#define MT_CAPTURE_RAW_BLOCK (128u << 10)  /* stream bytes per stored block (zstd's maximum) */
#define MT_CAPTURE_DIRECT_BYTES (32u << 10) /* stored pieces this large are not copied */

typedef struct {
    int fd;
    int error;           /* errno of the first failure (0: none); every call fails after it */
    int pending;         /* input taken since the last flush, not readable from the file yet */
    size_t block_left;   /* stream bytes until the current block is closed */
    size_t block_bytes;  /* stream bytes per block */
    uint64_t flush_ns;   /* the flush interval */
    uint64_t flushed_at; /* CLOCK_MONOTONIC ns of the last flush (or of the open) */
    struct ZSTD_CCtx_s *zc; /* the compressor (zstd.h's ZSTD_CCtx), kept for the next capture */
    uint8_t *out;        /* output (compressed, or stored blocks) not written yet ... */
    size_t out_len;      /* ... this much of it */
    int store_ratio;     /* MT_CAPTURE_STORE_RATIO after open; set it to 0 to never store */
    int storing;         /* 1: a frame of stored blocks is open, 0: a compressed frame */
    int probing;         /* the compressed frame is a probe, not judged yet */
    int raw_open;        /* a stored block is open in out: its header at raw_hdr ... */
    size_t raw_hdr;
    size_t raw_len;      /* ... and this much stream after it */
    uint64_t zout;       /* compressed bytes zstd produced since the open */
    uint64_t judge_in;   /* stream bytes compressed since the window began ... */
    uint64_t judge_zout; /* ... zout then ... */
    uint64_t judge_ns;   /* ... and when */
    uint64_t probe_left; /* stored stream bytes until the next probe */
    uint64_t probe_every;
    uint64_t stored;     /* stream bytes stored since the open */
    int harder;          /* mt_capture_sampled's search, until the stream proves fast */
} mt_capture;

/* Mark fd's file as being written (an exclusive flock, released when the last descriptor of
 * that open file is closed or its process dies). Another writer already holding it, or a
 * file system without locks, is not an error: followers then rely on the data alone. */
void mt_capture_take_lock(int fd);
/* 1 when some process holds the writer's lock on fd's file, else 0. */
int mt_capture_writer_alive(int fd);

/* Start a capture on fd (the caller's to close): take the lock, write the magic, begin the
 * first frame (compressed). flush_ns 0: MT_CAPTURE_FLUSH_NS; block_bytes 0: MT_CAPTURE_BLOCK_BYTES. A zeroed
 * mt_capture, or one used before (its context is reused). 0 or -1 (c->error says why). */
int mt_capture_open(mt_capture *c, int fd, uint64_t flush_ns, size_t block_bytes);
/* Compress harder: the stream is a sampled capture's (see MT_CAPTURE_SAMPLED_*). Call after
 * open, before the first write. -1 when zstd refused a parameter (the capture is still
 * written, compressed as well as the rest allow). */
int mt_capture_sampled(mt_capture *c);
/* Compress len bytes of the plain stream into the file; flushes when the interval is up. */
int mt_capture_write(mt_capture *c, const void *data, size_t len);
/* Whether input waits for a flush that is due now (cheap: call it when idle) ... */
int mt_capture_flush_due(const mt_capture *c);
/* ... and the flush: everything written so far becomes readable from the file. */
int mt_capture_flush(mt_capture *c);
/* End the last frame (the file is complete; fd stays open). Nothing may be written after it. */
int mt_capture_finish(mt_capture *c);
/* Free the context and buffer (after finish, or to abandon a capture). */
void mt_capture_release(mt_capture *c);

#endif
