"""A multiprocessing Pool(2) (fork start method) whose workers do pure-Python allocation
work: the --follow-fork workload (each worker is traced into a capture of its own);
MT_BENCH_SCALE scales the work."""

import multiprocessing
import os

N = int(60_000 * float(os.environ.get("MT_BENCH_SCALE", "1")))


def work(chunk: int) -> int:
    keep: list = []
    total = 0
    for i in range(chunk * N, (chunk + 1) * N):
        keep.append(({"id": i, "name": f"item-{i}"}, "x" * (i % 2000), list(range(i % 300))))
        if len(keep) > 10_000:
            total += sum(len(t) for _r, t, _n in keep[:5_000])
            del keep[:5_000]
    return total


if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    with multiprocessing.Pool(2) as pool:
        results = pool.map(work, range(4), chunksize=1)
        pool.close()
        pool.join()
    print(N, "records per task", sum(results) % 1000)
