"""Packing (recorder.c, "Packing"): while one thread alone has a ring, it encodes its records
itself and drains copy its bytes into the stream. A real program built to make that as easy
to get wrong as possible, checked to the block: its main thread churns malloc/free while a
Python thread that allocates now and then (too seldom for a ring) records under the lock
between its packed records; then two C threads start churning too (a second ring: packing
ends half-way through the main thread's work) and free half of the blocks the main thread
keeps, while the main thread goes on churning."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

KEPT, SLOW, WORKER_PAIRS = 400, 60, 50_000
KEPT_SIZE, SLOW_SIZE = 3331, 7771

LIB = r"""
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* n malloc/free pairs of 10000..10063 bytes, each freed 16 allocations later. */
static void churn_pairs(long n, unsigned long seed) {
    void *ring[16] = {0};
    unsigned long x = seed | 1;
    for (long i = 0; i < n; i++) {
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        size_t size = 10000 + (x >> 33) % 64;
        char *p = malloc(size);
        if (p) p[0] = 1;
        free(ring[i % 16]);
        ring[i % 16] = p;
    }
    for (int k = 0; k < 16; k++) free(ring[k]);
}

void churn(long n, unsigned long seed) { churn_pairs(n, seed); }

void *keep_one(size_t size) { return malloc(size); }

void **make(long n, size_t size) {
    void **blocks = calloc((size_t)n, sizeof(void *));
    for (long i = 0; i < n && blocks; i++) blocks[i] = malloc(size);
    return blocks;
}

struct job { long pairs; void **blocks; long n, first; };
static struct job jobs[2];
static pthread_t threads[2];

/* A worker churns, and frees every fourth block from `first` on, half-way through. */
static void *work(void *arg) {
    struct job *j = arg;
    churn_pairs(j->pairs / 2, (unsigned long)j->first + 7);
    for (long i = j->first; i < j->n; i += 4) free(j->blocks[i]);
    churn_pairs(j->pairs - j->pairs / 2, (unsigned long)j->first + 11);
    return NULL;
}

int workers_start(long pairs, void **blocks, long n) {
    for (int k = 0; k < 2; k++) {
        jobs[k] = (struct job){pairs, blocks, n, k};
        if (pthread_create(&threads[k], NULL, work, &jobs[k]) != 0) return -1;
    }
    return 0;
}

void workers_join(void) {
    for (int k = 0; k < 2; k++) pthread_join(threads[k], NULL);
}
"""

SCRIPT = f"""
import ctypes, sys, threading, time
from memtrace_core.tracer import _tracer
lib = ctypes.CDLL(sys.argv[1])
lib.churn.argtypes = [ctypes.c_long, ctypes.c_ulong]
lib.keep_one.argtypes = [ctypes.c_size_t]
lib.keep_one.restype = ctypes.c_void_p
lib.make.argtypes = [ctypes.c_long, ctypes.c_size_t]
lib.make.restype = ctypes.POINTER(ctypes.c_void_p)
lib.workers_start.argtypes = [ctypes.c_long, ctypes.POINTER(ctypes.c_void_p), ctypes.c_long]

kept = []


def slow():
    for i in range({SLOW}):
        kept.append(lib.keep_one({SLOW_SIZE}))
        time.sleep(0.01)


blocks = lib.make({KEPT}, {KEPT_SIZE})
t = threading.Thread(target=slow)
t.start()
seed = 0
while t.is_alive():
    lib.churn(2000, seed)
    seed += 1
t.join()
packed, rings = _tracer.packed_bytes(), _tracer.ring_count()
assert lib.workers_start({WORKER_PAIRS}, blocks, {KEPT}) == 0
most = rings
for i in range(60):
    lib.churn(2000, seed + i)
    most = max(most, _tracer.ring_count())
lib.workers_join()
print(packed, rings, most)
"""


def worker_bytes() -> int:
    """What the two workers allocate, from the same generator as the C code's."""
    total = 0
    for k in range(2):
        for n, seed in ((WORKER_PAIRS // 2, k + 7), (WORKER_PAIRS - WORKER_PAIRS // 2, k + 11)):
            x = seed | 1
            for _ in range(n):
                x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
                total += 10000 + (x >> 33) % 64
    return total


@pytest.fixture(scope="module")
def churn_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("packing")
    (d / "packing.c").write_text(LIB)
    subprocess.run(["gcc", "-O1", "-fPIC", "-shared", "-pthread", "-o",
                    str(d / "libpacking.so"), str(d / "packing.c")], check=True)
    return d / "libpacking.so"


@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
def test_packed_records_and_the_rest_reach_the_capture_in_order(mt, tmp_path, churn_lib,
                                                                native):
    run = mt.trace(tmp_path, SCRIPT, str(churn_lib),
                   options=("--native",) if native else (), timeout=300).check()
    packed, rings_alone, rings_most = map(int, run.proc.stdout.split())
    assert packed > 100_000  # the main thread packed its records while it had the only ring
    assert rings_alone == 1
    assert rings_most >= 2  # then a worker's ring ended packing while the main one churned
    reader = run.reader
    live = sorted(size for _a, size, _sid, _k in reader.live_allocations()
                  if size in (KEPT_SIZE, SLOW_SIZE) or 10000 <= size < 10064)
    assert live == [KEPT_SIZE] * (KEPT // 2) + [SLOW_SIZE] * SLOW
    # the workers' stacks (no Python frame; a Python thread's start has one such block):
    # every allocation, to the byte, all freed
    per_thread: dict[int, list[int]] = {}
    for sid in range(reader.n_stacks):
        pynode, _nat, thread = reader.stack_key(sid)
        if pynode == 0:
            figures = per_thread.setdefault(thread, [0, 0, 0, 0])
            for k, value in enumerate(reader.stack_counters(sid)[:4]):
                figures[k] += value
    workers = [f for f in per_thread.values() if f[1] > 1000]
    assert [f[1] for f in workers] == [WORKER_PAIRS] * 2
    assert sum(f[0] for f in workers) == worker_bytes()
    assert [f[2:] for f in workers] == [[0, 0]] * 2
