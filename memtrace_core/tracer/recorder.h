/* The recorder: turns intercepted calls into wire-format records (docs/FORMAT.md).
 *
 * Records reach the stream in the order of the calls, across threads (so a free is never
 * seen after the reuse of its address): in exact mode each thread numbers its records from
 * one counter and keeps them in a ring of its own, which drains merge by number (see
 * "per-thread event rings" in recorder.c); sampled mode records under the lock. One lock
 * guards the interning tables, the encoding and the active buffer; stacks are captured
 * before taking it. A writer thread that never touches Python flushes full buffers to the
 * output fd. */
#ifndef MEMTRACE_RECORDER_H
#define MEMTRACE_RECORDER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h" /* record types and allocator codes: memtrace_core/wire/format.h */

/* Native stacks keep their innermost frames up to this many by default (mt_recorder_start);
 * a deeper stack ends, outermost, in a marker address saying how many frames were cut. */
#define MT_DEFAULT_NATIVE_DEPTH 4096
#define MT_CUT_MARKER_BASE 0xFFFFFFFF00000000ULL

/* Symbols only this extension uses are hidden: a hook reads them, and calls the recorder,
 * without going through the GOT/PLT. */
#define MT_INTERNAL __attribute__((visibility("hidden")))

/* Set while the tracer runs; hooks read it without the lock. */
extern volatile int mt_tracking MT_INTERNAL;

/* Per-thread "inside the tracer" flag: initial-exec TLS, so reading it never allocates. */
extern __thread int mt_guard __attribute__((tls_model("initial-exec")));

/* mt_recorder_start's results (_tracer.pyx has a message for each). */
enum mt_start_result {
    MT_START_OK = 0,
    MT_START_RUNNING = -1,   /* this process is traced already */
    MT_START_NOMEM = -2,     /* the interning tables or the sampler could not be allocated */
    MT_START_NO_WRITER = -3, /* the writer thread could not be created */
};

/* Start recording to fd (header = pre-encoded HEADER record); compress=1 for capture files
 * (written by the capture writer: memtrace_core/capture/writer.h); sample_mean > 0 records
 * only sampled allocations and their frees (sampler.h; seed 0: from the clock).
 * MT_START_OK on success, else another mt_start_result. */
int mt_recorder_start(int fd, int native, int native_depth, int compress, const char *header,
                      size_t header_len, uint64_t sample_mean, uint64_t sample_seed);
/* Stop: write TRAILER, flush, join the writer. has_code=0 writes a nil exit code. */
void mt_recorder_stop(int exit_code, int has_code);
/* How many child processes ran untraced (written in the TRAILER; -1: unknown). */
void mt_set_untraced_children(long n);
/* Whether the writer gave up (reader gone): the hooks have been removed. */
int mt_recorder_failed(void);
/* Whether a recording is open (started, not stopped yet). */
int mt_recorder_running(void);
/* After a native recording has stopped: every address of its native stack trie (*ips,
 * *n_ips of them, each once) and its last memory maps snapshot (*maps: a msgpack array of
 * MAPS entries, docs/FORMAT.md), both malloc'd for the caller to free. Returns 1 only when
 * they say all the stream does: the trie was sent whole and no object ever left the maps
 * (so the last snapshot names every address as the whole history would); else 0. */
int mt_recorder_native_summary(uint64_t **ips, size_t *n_ips, uint8_t **maps,
                               size_t *maps_len);
/* How many threads' record rings exist (exact mode; recorder.c): for tests. */
int mt_recorder_rings(void);
/* How many bytes the recording took from a thread's packed records ("Packing"): for tests. */
long mt_recorder_packed_bytes(void);
/* The bytes of those rings resident in memory (mincore; -1 when it cannot tell): for tests. */
long mt_recorder_ring_resident(void);
/* The bytes of the threads' native-node maps resident in memory (-1: cannot tell): for
 * tests. */
long mt_recorder_memo_resident(void);
/* A stopped recording leaves nothing behind: its native stack table (kept for
 * mt_recorder_native_summary) goes too. A detach calls it. */
void mt_recorder_release(void);
/* The bytes of the recorder's buffers and interning tables (0 once a recording has stopped
 * and been released): for tests. */
long mt_recorder_held_bytes(void);
/* The interpreter is finalizing: allocations from now on carry no Python stack. */
void mt_recorder_python_gone(void);

/* ra/cfa: the hook's return address and its caller's stack pointer at the call (see
 * capture_native in recorder.c). */
void mt_record_alloc(void *addr, size_t size, int allocator, uintptr_t ra,
                     uintptr_t cfa) MT_INTERNAL;
/* Returns 1 when a FREE was sent (sampling: only for sampled addresses, and munmap). */
int mt_record_free(void *addr, size_t size, int allocator) MT_INTERNAL;
/* Re-send the memory maps (after dlopen/dlclose). */
void mt_record_maps(void);
/* Name a thread by its OS id: the first name a thread gets from Python (its allocations so
 * far take that name), or, with rename=1, a later rename (its next allocations carry the new
 * name under a new thread index, the earlier ones keep theirs). */
void mt_set_thread_name(long os_tid, const char *name, int rename);
/* A thread renamed itself or was renamed (prctl, pthread_setname_np). */
void mt_thread_renamed(pthread_t thread, const char *name);

#endif
