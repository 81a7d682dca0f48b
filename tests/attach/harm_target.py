"""A target for the do-no-harm attach tests, run with a plain interpreter. Prints what it
observes, so the test can compare it with what an untraced run would print; exits with
status 7 once the file named by $STOP_FILE exists (a status of its own, to check it is kept).

Modes: sleep (time.sleep(0.1) in a loop, printing how long each took), read (blocking reads
of stdin, echoed), python (deterministic pure-Python work), c (deterministic vector work in
C through ctypes, the GIL released), threads (8 threads mixing the above), signal (counts
SIGUSR1 and acknowledges each one).
"""

import ctypes
import os
import signal
import sys
import threading
import time

MODE = sys.argv[1]
STOP = os.environ["STOP_FILE"]
SLEEP = 0.1
lock = threading.Lock()


def say(*words):
    with lock:
        print(*words, flush=True)


def python_work():
    total = 0
    for i in range(20_000):
        total = (total * 31 + i * i) % 1_000_000_007
    return total


def sleeper(tag):
    while not os.path.exists(STOP):
        t0 = time.monotonic()
        time.sleep(SLEEP)
        say("slept", tag, f"{time.monotonic() - t0:.4f}")


def computer(tag):
    while not os.path.exists(STOP):
        say("py", tag, python_work())


def vector(tag):
    lib = ctypes.CDLL(os.environ["HARMLIB"])
    lib.harm_vector_work.restype = ctypes.c_double
    lib.harm_vector_work.argtypes = [ctypes.c_long]
    say("ref", tag, repr(lib.harm_vector_work(2_000_000)))
    while not os.path.exists(STOP):
        say("c", tag, repr(lib.harm_vector_work(2_000_000)))


def reader():
    while True:
        line = sys.stdin.readline()
        if not line or line.strip() == "end":
            break
        say("read", line.strip())


def main():
    if MODE == "sleep":
        say("ready")
        sleeper("main")
    elif MODE == "python":
        say("ready")
        computer("main")
    elif MODE == "c":
        say("ready")
        vector("main")
    elif MODE == "read":
        say("ready")
        reader()
        while not os.path.exists(STOP):
            time.sleep(0.01)
    elif MODE == "threads":
        kinds = [sleeper, computer, vector, sleeper, computer, vector, sleeper, sleeper]
        workers = [threading.Thread(target=k, args=(f"t{i}",), name=f"worker-{i}")
                   for i, k in enumerate(kinds)]
        for w in workers:
            w.start()
        say("ready")
        for w in workers:
            w.join()
    elif MODE == "signal":
        count = 0

        def on_usr1(signum, frame):
            # no lock here: a second signal may run this handler inside the first one
            nonlocal count
            count += 1
            os.write(1, f"usr1 {count}\n".encode())

        signal.signal(signal.SIGUSR1, on_usr1)
        say("ready")
        while not os.path.exists(STOP):
            time.sleep(0.05)
    sys.exit(7)


main()
