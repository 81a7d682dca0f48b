"""Many live C allocations over many distinct Python stacks: bench_tui's memory figure.

MT_BENCH_LIVE blocks (default 1,000,000) are malloc-ed by churn.c's keep() and kept,
spread over MT_BENCH_STACKS distinct call paths (default 2,000) eight Python frames deep
that share their outer frames, as a real program's do. MT_BENCH_CHURN_LIB names the
compiled library (the benchmarks build it)."""

import ctypes
import os

LIVE = int(os.environ.get("MT_BENCH_LIVE", "1000000"))
STACKS = int(os.environ.get("MT_BENCH_STACKS", "2000"))

lib = ctypes.CDLL(os.environ["MT_BENCH_CHURN_LIB"])
lib.keep.restype = ctypes.c_void_p
lib.keep.argtypes = [ctypes.c_long, ctypes.c_size_t]

# depth d (0..6) has d + 3 functions; each call path ends in a leaf function of its own
source = []
for depth in range(7):
    for k in range(depth + 3):
        source.append(f"def f{depth}_{k}(path, n):\n    return path[0](path[1:], n)\n")
for s in range(STACKS):
    source.append(f"def leaf{s}(path, n):\n    return lib.keep(n, 32)\n")
exec("".join(source))  # distinct code objects, hence distinct stacks

KEPT = []
for s in range(STACKS):
    path = [globals()[f"f{depth}_{s % (depth + 3)}"] for depth in range(1, 7)]
    path.append(globals()[f"leaf{s}"])
    n = LIVE // STACKS + (1 if s < LIVE % STACKS else 0)
    KEPT.append(globals()[f"f0_{s % 3}"](path, n))
