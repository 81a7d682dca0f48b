"""Pure-Python allocation-heavy work: dicts, strings, lists and tuples made and dropped,
small (pymalloc) and large (malloc) objects mixed; MT_BENCH_SCALE scales the work."""

import os

N = int(150_000 * float(os.environ.get("MT_BENCH_SCALE", "1")))


def make(i: int) -> tuple:
    record = {"id": i, "name": f"item-{i}", "tags": [i, i + 1, i + 2]}
    text = "x" * (i % 3000)
    numbers = list(range(i % 400))
    return record, text, numbers


def main() -> None:
    keep: list = []
    total = 0
    for i in range(N):
        keep.append(make(i))
        if len(keep) > 20_000:
            total += sum(len(t) for _r, t, _n in keep[:10_000])
            del keep[:10_000]
    print(N, "records", total % 1000)


main()
