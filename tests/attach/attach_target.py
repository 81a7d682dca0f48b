"""A long-running program for the attach tests (run with a plain interpreter, without memtrace
on its path). Every STEP seconds it leaks one block through a Python function and one through
the C library ($LEAKLIB), frees one block made at start (unknown to a late tracer), and prints
a line with both addresses, so the test knows the exact ground truth; a thread named
leak-worker leaks too, and every 10th round a short thread runs. It exits 0 once the file
named by $STOP_FILE exists. With --sleep S it first sleeps S seconds (a target blocked in a
syscall) and reports how long the sleep really took; with --read it then waits for a line on
stdin (a blocking read) and echoes it; with --churn a thread mallocs and frees in C without
end."""

import ctypes
import os
import sys
import threading
import time

PY_SIZE = 100_000  # bytearray(n) mallocs n + 1 bytes
C_SIZE = 70_001
THREAD_SIZE = 30_000  # leaked by the thread named "leak-worker"
STEP = float(os.environ.get("STEP", "0.05"))

lib = ctypes.CDLL(os.environ["LEAKLIB"])
lib.attach_leak_c.restype = ctypes.c_void_p
lib.attach_leak_c.argtypes = [ctypes.c_size_t]
kept = [None] * 100_000
pool = [bytearray(50_000) for _ in range(400)]


def leak_python(n):
    kept[n] = bytearray(PY_SIZE)


def leak_c():
    return lib.attach_leak_c(C_SIZE)


def thread_leak():
    blocks = []
    while True:
        blocks.append(bytearray(THREAD_SIZE))
        time.sleep(STEP)


def main():
    threading.Thread(target=thread_leak, name="leak-worker", daemon=True).start()
    if "--churn" in sys.argv:  # C malloc/free without end, GIL released (ctypes)
        threading.Thread(target=lib.attach_churn, name="churn", daemon=True).start()
    if len(sys.argv) > 2 and sys.argv[1] == "--sleep":
        print("sleeping", flush=True)
        t0 = time.monotonic()
        time.sleep(float(sys.argv[2]))
        print(f"slept {time.monotonic() - t0:.3f}", flush=True)
    if "--read" in sys.argv:
        print("reading", flush=True)
        print(f"read {sys.stdin.buffer.readline()!r}", flush=True)
    print(f"ready {os.getpid()}", flush=True)
    n = 0
    while not os.path.exists(os.environ["STOP_FILE"]):
        n += 1
        leak_python(n)
        py = ctypes.addressof((ctypes.c_char * 1).from_buffer(kept[n]))
        c = leak_c()
        if pool:
            pool.pop()
        if n % 10 == 0:  # a short-lived thread now and then (joined: counts stay constant)
            short = threading.Thread(target=bytearray, args=(1000,), name=f"short-{n}")
            short.start()
            short.join()
        print(f"leak {n} {py} {c} threads={threading.active_count()} "
              f"globals={len(globals())} "
              f"boot={threading.Thread._bootstrap_inner.__module__}", flush=True)
        time.sleep(STEP)
    print("done", flush=True)


main()
