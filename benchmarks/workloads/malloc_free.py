"""Millions of malloc/free from C (benchmarks/workloads/churn.c) called through ctypes.

MT_BENCH_CHURN_LIB names the compiled library (bench_run.py builds it); MT_BENCH_SCALE
scales the amount of work (1.0 = about one second untraced on the reference machine)."""

import ctypes
import os

lib = ctypes.CDLL(os.environ["MT_BENCH_CHURN_LIB"])
lib.churn.restype = ctypes.c_long
lib.churn.argtypes = [ctypes.c_long, ctypes.c_ulong]

CALLS = int(550 * float(os.environ.get("MT_BENCH_SCALE", "1")))
PER_CALL = 20000


def main() -> None:
    total = 0
    for i in range(CALLS):
        total += lib.churn(PER_CALL, i)
    print(CALLS * PER_CALL, "malloc/free pairs", total % 1000)


main()
