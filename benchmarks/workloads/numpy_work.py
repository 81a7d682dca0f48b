"""numpy work: array arithmetic, matrix products and sorts on arrays of mixed sizes;
MT_BENCH_SCALE scales the work."""

import os

import numpy as np

N = int(4500 * float(os.environ.get("MT_BENCH_SCALE", "1")))


def main() -> None:
    rng = np.random.default_rng(0)
    total = 0.0
    for i in range(N):
        a = rng.random((120, 120))
        b = a @ a.T
        c = np.sort(b, axis=1)
        d = np.arange(1 + i % 5000, dtype=np.float64) * 2.0 + 1.0
        total += float(c[0, 0] + d.sum())
    print(N, "rounds", round(total) % 1000)


main()
