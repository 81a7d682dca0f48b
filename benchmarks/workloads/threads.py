"""MT_BENCH_THREADS threads (default 1) calling churn.c's malloc/free loop at the same time
through ctypes (the GIL is released during each call): the same total work whatever the
number of threads, so the tracer's scaling shows as the ratio to the untraced run at 1, 2
and 8 threads. MT_BENCH_SCALE scales the work."""

import ctypes
import os
import threading

lib = ctypes.CDLL(os.environ["MT_BENCH_CHURN_LIB"])
lib.churn.restype = ctypes.c_long
lib.churn.argtypes = [ctypes.c_long, ctypes.c_ulong]

THREADS = int(os.environ.get("MT_BENCH_THREADS", "1"))
CALLS = int(400 * float(os.environ.get("MT_BENCH_SCALE", "1")))
PER_CALL = 20000


def worker(first: int, totals: list[int]) -> None:
    for i in range(first, CALLS, THREADS):
        totals[first] += lib.churn(PER_CALL, i)


def main() -> None:
    totals = [0] * THREADS
    threads = [threading.Thread(target=worker, args=(k, totals)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(CALLS * PER_CALL, "malloc/free pairs on", THREADS, "threads", sum(totals) % 1000)


main()
