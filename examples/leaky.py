"""A small service-like program that leaks exactly 10 MiB: the README's first example.

`cache_results` keeps ten 1 MiB buffers forever (the leak); `handle_requests` allocates and
drops temporary buffers (churn that a profiler must not report as leaked).
"""

import array
import time

MiB = 1 << 20
_cache: list[array.array] = []


def cache_results(n: int) -> None:
    """The leak: buffers appended to a module-level list and never dropped."""
    for _ in range(n):
        _cache.append(array.array("B", [0]) * MiB)


def handle_requests(n: int) -> int:
    """Temporary work: every buffer is released before returning."""
    total = 0
    for i in range(n):
        scratch = array.array("B", [i % 256]) * (256 * 1024)
        total += scratch[0]
    return total


def main() -> None:
    for _ in range(10):
        handle_requests(20)
        cache_results(1)
        time.sleep(0.05)
    print(f"cached {len(_cache)} buffers of {MiB} bytes")


if __name__ == "__main__":
    main()
