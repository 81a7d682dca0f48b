"""A numpy workload for the screenshots: a growing cache of arrays (kept) and temporaries
(freed), from two threads, running for a few seconds so the live screen has something to show."""

import sys
import threading
import time

import numpy as np

cache: list[np.ndarray] = []


def load_tiles(n: int) -> None:
    for i in range(n):
        cache.append(np.ones((256, 256)) * i)  # kept: 512 KiB each


def smooth(frame: np.ndarray) -> float:
    padded = np.pad(frame, 2)  # temporary
    return float(np.convolve(padded.ravel()[:4096], np.ones(16), "same").sum())


def worker(stop: threading.Event) -> None:
    while not stop.is_set():
        smooth(np.random.default_rng(1).random((512, 512)))
        time.sleep(0.01)


def main(seconds: float) -> None:
    stop = threading.Event()
    t = threading.Thread(target=worker, args=(stop,), name="smoother")
    t.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        load_tiles(4)
        time.sleep(0.1)
    stop.set()
    t.join()


main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
