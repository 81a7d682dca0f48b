"""Reader throughput: records decoded and aggregated per second on one core.

The inputs are real captures, written by `memtrace run` (the tracer's own writer) on the
benchmark workloads:
  churn    malloc_free.py --native: millions of C malloc/free pairs (ALLOC/FREE heavy)
  python   pure_python.py --trace-python-allocators: every PyMem/PyObject allocation
  stacks   numpy_work.py --native --trace-python-allocators: tens of thousands of distinct
           hybrid stacks (PYNODE/NATIVENODE heavy)
Each is timed, median of --repeat runs of CPU time (process_time: robust on a shared
machine), four ways:
  memory   StreamReader.feed() of the whole plain stream (capture_stream's pieces, joined)
  chunks   feed() in 64 KiB pieces, as from a live pipe
  file     read_capture() of the plain stream written to a file
  zfile    read_capture() of the capture as `memtrace run` wrote it (zstd), inflating included
and, for scale, msgpack-python's Unpacker merely decoding the same records. Every way must
give the same figures (records, totals, peak, stacks), or the run fails.

    python benchmarks/bench_reader.py                     # the three captures, 5 repeats
    python benchmarks/bench_reader.py -c churn --scale 2  # bigger (scale 1: ~11 M records)
    python benchmarks/bench_reader.py --smoke             # tiny captures, one repeat
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import (
    REPO,
    WORKLOADS,
    Failed,
    Results,
    build_churn,
    child_env,
    parser,
    run,
)

sys.path.insert(0, str(REPO))

import msgpack  # noqa: E402

from memtrace_core.reader import StreamReader, capture_stream, read_capture  # noqa: E402

# name -> (workload, `memtrace run` options, MT_BENCH_SCALE at --scale 1)
CAPTURES: dict[str, tuple[str, tuple[str, ...], float]] = {
    "churn": ("malloc_free", ("--native",), 0.5),
    "python": ("pure_python", ("--trace-python-allocators",), 0.5),
    "stacks": ("numpy_work", ("--native", "--trace-python-allocators"), 0.3),
}
SMOKE_SCALE = 0.02
PIPE_CHUNK = 64 << 10
MSGPACK_SAMPLE = 16 << 20  # msgpack-python decodes this much of the stream, for its rate
TARGET_MRECORDS = 5.0


def make_capture(name: str, work: Path, scale: float) -> Path:
    """Trace the capture's workload with `memtrace run`; the capture file it wrote."""
    workload, options, base = CAPTURES[name]
    capture = work / f"{name}.mtrace"
    env = child_env(MT_BENCH_SCALE=str(base * scale),
                    MT_BENCH_CHURN_LIB=str(work / "libchurn.so"), OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "memtrace_tui", "run", *options, "-o", str(capture), "--force",
         str(WORKLOADS / f"{workload}.py")],
        cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0 or not capture.exists():
        raise Failed(f"memtrace run {' '.join(options)} {workload}.py exited "
                     f"{proc.returncode}: {proc.stderr.strip()[-300:]}")
    return capture


def figures_of(reader: StreamReader) -> tuple[int, ...]:
    """What every way of reading must agree on."""
    return (reader.records, reader.total_allocations, reader.total_frees,
            reader.total_allocated_bytes, reader.heap_bytes, reader.peak_bytes,
            reader.n_stacks, int(reader.complete))


def timed(fn: Callable[[], StreamReader]) -> tuple[float, StreamReader]:
    """CPU seconds of this process (one core's work, whatever else the machine runs)."""
    start = time.process_time()
    reader = fn()
    return time.process_time() - start, reader


def msgpack_rate(data: bytes) -> float:
    """Records a second msgpack-python's Unpacker decodes (no aggregation), on a prefix."""
    sample = io.BytesIO(data[8 : 8 + MSGPACK_SAMPLE])
    count = 0
    start = time.process_time()
    for _ in msgpack.Unpacker(sample, use_list=False, raw=True):
        count += 1
    return count / max(time.process_time() - start, 1e-9)


def bench_capture(name: str, capture: Path, work: Path, repeats: int,
                  results: Results) -> None:
    data = b"".join(capture_stream(capture))
    plain = work / f"{name}.plain.mtrace"
    plain.write_bytes(data)

    def memory() -> StreamReader:
        reader = StreamReader()
        reader.feed(data)
        reader.finish()
        return reader

    def chunks() -> StreamReader:
        reader = StreamReader()
        view = memoryview(data)
        for i in range(0, len(view), PIPE_CHUNK):
            reader.feed(view[i : i + PIPE_CHUNK])
        reader.finish()
        view.release()
        return reader

    ways: dict[str, Callable[[], StreamReader]] = {
        "memory": memory, "chunks": chunks,
        "file": lambda: read_capture(plain), "zfile": lambda: read_capture(capture)}
    times: dict[str, list[float]] = {way: [] for way in ways}
    expected: tuple[int, ...] | None = None
    for _ in range(repeats):  # round-robin, so a slow patch of the machine hits every way
        for way, fn in ways.items():
            seconds, reader = timed(fn)
            times[way].append(seconds)
            got = figures_of(reader)
            if reader.error is not None or not reader.complete:
                raise Failed(f"{name}/{way}: the capture reads as incomplete or corrupt "
                             f"({reader.error})")
            if expected is None:
                expected = got
            elif got != expected:
                raise Failed(f"{name}/{way} read different figures: {got} != {expected}")
    assert expected is not None
    records = expected[0]
    print(f"\n{name}: {records:,} records, {expected[6]:,} stacks, "
          f"{expected[1]:,} allocations; plain {len(data) / 1e6:.1f} MB "
          f"({len(data) / records:.1f} bytes/record), zstd {capture.stat().st_size / 1e6:.1f} MB")
    results.figure(f"{name}/records", records, "records", better="none")
    results.figure(f"{name}/stacks", expected[6], "stacks", better="none")
    results.figure(f"{name}/plain_bytes_per_record", round(len(data) / records, 2), "B")
    results.figure(f"{name}/zstd_bytes_per_record",
                   round(capture.stat().st_size / records, 3), "B")
    base = statistics.median(times["memory"])
    print(f"  {'way':<10}{'CPU s':>10}{'Mrecords/s':>12}{'ratio':>8}")
    for way, values in times.items():
        med = statistics.median(values)
        rate = records / max(med, 1e-9) / 1e6
        results.figure(f"{name}/{way}/Mrecords_per_s", round(rate, 2), "Mrecords/s",
                       better="higher")
        print(f"  {way:<10}{med:>10.3f}{rate:>12.2f}{med / max(base, 1e-9):>8.2f}")
    rate = msgpack_rate(data) / 1e6
    results.figure(f"{name}/msgpack_decode_only/Mrecords_per_s", round(rate, 2),
                   "Mrecords/s", better="higher")
    print(f"  {'msgpack*':<10}{'':>10}{rate:>12.2f}{'':>8}   (*msgpack-python Unpacker on "
          f"up to {MSGPACK_SAMPLE >> 20} MB: decode only, no aggregation)")


def measure(args: argparse.Namespace, results: Results) -> None:
    with tempfile.TemporaryDirectory(prefix="mt-bench-reader-") as tmp:
        work = Path(tmp)
        build_churn(work)
        for name in args.captures:
            start = time.perf_counter()
            capture = make_capture(name, work, args.scale)
            print(f"{name}: traced {CAPTURES[name][0]}.py in {time.perf_counter() - start:.1f} s",
                  flush=True)
            bench_capture(name, capture, work, args.repeat, results)
    print(f"\ntarget: >= {TARGET_MRECORDS:g} Mrecords/s (memory)")


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("-c", "--captures", default=",".join(CAPTURES),
                    help="comma-separated subset of: " + ", ".join(CAPTURES))
    ap.add_argument("--scale", type=float, default=1.0, help="size multiplier of the captures")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each way")
    args = ap.parse_args(argv)
    args.captures = [c for c in args.captures.split(",") if c]
    for name in args.captures:
        if name not in CAPTURES:
            ap.error(f"unknown capture {name!r}; choose from {', '.join(CAPTURES)}")
    if args.smoke:
        args.scale, args.repeat = SMOKE_SCALE, 1
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    return run("bench_reader", measure, args)


if __name__ == "__main__":
    sys.exit(main())
