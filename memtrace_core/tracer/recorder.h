/* The recorder: turns intercepted calls into wire-format records (docs/FORMAT.md).
 *
 * One lock orders every record (so a free is never seen after the reuse of its address),
 * guards the interning tables and the active buffer; stacks are captured before taking it.
 * A writer thread that never touches Python flushes full buffers to the output fd. */
#ifndef MEMTRACE_RECORDER_H
#define MEMTRACE_RECORDER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

enum mt_allocator {
    MT_MALLOC = 1, MT_CALLOC = 2, MT_REALLOC = 3, MT_POSIX_MEMALIGN = 4, MT_ALIGNED_ALLOC = 5,
    MT_MEMALIGN = 6, MT_VALLOC = 7, MT_PVALLOC = 8, MT_MMAP = 9, MT_FREE = 10, MT_MUNMAP = 11,
    MT_REALLOCARRAY = 12, MT_PYMALLOC_MALLOC = 13, MT_PYMALLOC_CALLOC = 14,
    MT_PYMALLOC_REALLOC = 15, MT_PYMALLOC_FREE = 16, MT_PYMEM_RAW_MALLOC = 17,
    MT_PYMEM_RAW_CALLOC = 18, MT_PYMEM_RAW_REALLOC = 19, MT_PYMEM_RAW_FREE = 20,
};

/* Native stacks keep their innermost frames up to this many by default (mt_recorder_start);
 * a deeper stack ends, outermost, in a marker address saying how many frames were cut. */
#define MT_DEFAULT_NATIVE_DEPTH 4096
#define MT_CUT_MARKER_BASE 0xFFFFFFFF00000000ULL

/* Format 2's compact records (docs/FORMAT.md): an ALLOC or FREE whose other fields are those
 * of the previous ALLOC or FREE carries its address (and size) alone. */
enum { MT_REC_ALLOC_SAME = 10, MT_REC_FREE_SAME = 11 };

/* Set while the tracer runs; hooks read it without the lock. */
extern volatile int mt_tracking;

/* Per-thread "inside the tracer" flag: initial-exec TLS, so reading it never allocates. */
extern __thread int mt_guard __attribute__((tls_model("initial-exec")));

/* Start recording to fd (header = pre-encoded HEADER record); compress=1 for capture files
 * (magic "MEMTRACZ", then a zstd frame holding the plain stream); sample_mean > 0 records
 * only sampled allocations and their frees (sampler.h; seed 0: from the clock). 0 on
 * success. */
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
/* The interpreter is finalizing: allocations from now on carry no Python stack. */
void mt_recorder_python_gone(void);

/* ra/cfa: the hook's return address and its caller's stack pointer at the call (see
 * capture_native in recorder.c). */
void mt_record_alloc(void *addr, size_t size, int allocator, uintptr_t ra, uintptr_t cfa);
/* Returns 1 when a FREE was sent (sampling: only for sampled addresses, and munmap). */
int mt_record_free(void *addr, size_t size, int allocator);
/* Re-send the memory maps (after dlopen/dlclose). */
void mt_record_maps(void);
/* Name a thread by its OS id: the first name a thread gets from Python (its allocations so
 * far take that name), or, with rename=1, a later rename (its next allocations carry the new
 * name under a new thread index, the earlier ones keep theirs). */
void mt_set_thread_name(long os_tid, const char *name, int rename);
/* A thread renamed itself or was renamed (prctl, pthread_setname_np). */
void mt_thread_renamed(pthread_t thread, const char *name);

#endif
