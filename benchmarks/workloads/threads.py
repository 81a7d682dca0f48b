"""MT_BENCH_THREADS threads (default 1) calling churn.c's malloc/free loop at the same time
through ctypes (the GIL is released during each call): the same total work whatever the
number of threads, so the tracer's scaling shows as the ratio to the untraced run at 1, 2
and 8 threads. MT_BENCH_SCALE scales the work. MT_BENCH_IDLE more threads (default 0) each
do 2,000 malloc/free first (enough for the tracer to keep a ring for each), then wait until
the work is done: a service's pool after a busy spell (threads_idle: one busy thread beside
200 idle ones)."""

import ctypes
import os
import threading

lib = ctypes.CDLL(os.environ["MT_BENCH_CHURN_LIB"])
lib.churn.restype = ctypes.c_long
lib.churn.argtypes = [ctypes.c_long, ctypes.c_ulong]

THREADS = int(os.environ.get("MT_BENCH_THREADS", "1"))
IDLE = int(os.environ.get("MT_BENCH_IDLE", "0"))
CALLS = int(400 * float(os.environ.get("MT_BENCH_SCALE", "1")))
PER_CALL = 20000


def worker(first: int, totals: list[int]) -> None:
    for i in range(first, CALLS, THREADS):
        totals[first] += lib.churn(PER_CALL, i)


def idle(started: threading.Barrier, done: threading.Event) -> None:
    lib.churn(2000, 1)
    started.wait()
    done.wait()


def main() -> None:
    totals = [0] * THREADS
    started, done = threading.Barrier(IDLE + 1), threading.Event()
    pool = [threading.Thread(target=idle, args=(started, done)) for _ in range(IDLE)]
    for t in pool:
        t.start()
    started.wait()
    threads = [threading.Thread(target=worker, args=(k, totals)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    for t in pool:
        t.join()
    print(CALLS * PER_CALL, "malloc/free pairs on", THREADS, "threads", sum(totals) % 1000)


main()
