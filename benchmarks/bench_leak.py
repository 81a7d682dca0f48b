"""Leak hunting's costs: the timeline of `view` (reading with instants, moving the time
cursor) on a capture of ~20 million records, and the growth window on the live path.

  timeline  churn: malloc_free.py --native (ALLOC/FREE heavy; --scale 1: ~20 M records).
            read_capture() against the timeline's reading (instants taken on the way), then
            the time to show the tree at an instant (set_instant: the stacks whose figures
            differ are recounted), over 20 instants across the run.
  timeline_stacks  the same on the stacks capture below (scrubbing tens of thousands of
            stacks).
  growth    stacks: numpy_work.py --native (tens of thousands of distinct stacks) fed to a
            live tree in 64 KiB pieces, one update per piece: stacks absorbed per second
            with the growth window sliding (a snapshot of every stack every 0.5 s of the
            program's clock) and without.

    python benchmarks/bench_leak.py             # both, --scale 1
    python benchmarks/bench_leak.py --smoke     # tiny captures
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_reader import make_capture
from benchlib import REPO, Results, build_churn, parser, run

sys.path.insert(0, str(REPO))

from memtrace_core.model import CallTree  # noqa: E402
from memtrace_core.model.build import session_for_capture  # noqa: E402
from memtrace_core.reader import StreamReader, capture_stream, read_capture  # noqa: E402

SCRUB_TARGET_S = 0.3
PIPE_CHUNK = 64 << 10


def bench_timeline(capture: Path, results: Results, prefix: str = "timeline") -> None:
    start = time.perf_counter()
    plain = read_capture(capture)
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    session = session_for_capture(capture, names="off")
    timeline_s = time.perf_counter() - start
    tree, timeline = session.tree, session.timeline
    if timeline is None or plain.records != session.reader.records:
        results.fail("the timeline's reading differs from read_capture's")
        return
    results.figure(f"{prefix}/records", plain.records, "records", better="none")
    results.figure(f"{prefix}/read_capture_s", plain_s, "s")
    results.figure(f"{prefix}/session_with_timeline_s", timeline_s, "s")
    results.figure(f"{prefix}/instants", len(timeline.points), "instants", better="none")
    points = timeline.points
    picks = [points[i * (len(points) - 1) // 19] for i in range(20)] if len(points) > 1 else []
    times = []
    for instant in picks:
        t0 = time.perf_counter()
        tree.set_instant(instant)
        times.append(time.perf_counter() - t0)
        if tree.root.total[12] != instant.heap_bytes:
            results.fail(f"the tree at {instant.t_us} us is not the heap then")
            return
    if times:
        results.figure(f"{prefix}/scrub_median_s", statistics.median(times), "s")
        results.figure(f"{prefix}/scrub_max_s", max(times), "s")
    tree.close()


def absorb(data: list[bytes], sliding: bool) -> tuple[float, int]:
    reader = StreamReader()
    tree = CallTree(reader)
    if not sliding:
        tree.set_growth_from(None)
        tree._fixed_growth = True  # no snapshots: the tree without the growth window
    start = time.process_time()
    for piece in data:
        reader.feed(piece)
        tree.update()
    return time.process_time() - start, reader.n_stacks


def bench_growth(capture: Path, results: Results, repeats: int) -> None:
    stream = b"".join(capture_stream(capture))
    pieces = [stream[i:i + PIPE_CHUNK] for i in range(0, len(stream), PIPE_CHUNK)]
    for label, sliding in (("without", False), ("with", True)):
        runs = [absorb(pieces, sliding) for _ in range(repeats)]
        seconds = statistics.median(r[0] for r in runs)
        results.figure(f"growth/{label}/stacks_per_s", runs[0][1] / seconds, "stacks/s",
                       better="higher")


def measure(args: argparse.Namespace, results: Results) -> None:
    with tempfile.TemporaryDirectory(prefix="mt-bench-leak-") as tmp:
        work = Path(tmp)
        build_churn(work)
        capture = make_capture("churn", work, 1.8 * args.scale)
        bench_timeline(capture, results)
        stacks = make_capture("stacks", work, args.scale)
        bench_timeline(stacks, results, "timeline_stacks")  # scrubbing many stacks
        bench_growth(stacks, results, args.repeat)
    for key, fig in results.figures.items():
        value = fig["value"]
        text = f"{value:,.4g}" if isinstance(value, float) else f"{value:,}"
        print(f"{key:36} {text:>14} {fig['unit']}")
    with_, without = (results.figures.get(f"growth/{w}/stacks_per_s", {}).get("value")
                      for w in ("with", "without"))
    if with_ and without:
        print(f"growth window: {without / with_:.2f}x the time of the tree without it")
    print(f"\ntarget: scrub <= {SCRUB_TARGET_S:g} s on ~20 M records")


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--scale", type=float, default=1.0, help="size multiplier of the captures")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of the growth path")
    args = ap.parse_args(argv)
    if args.smoke:
        args.scale, args.repeat = 0.02, 1
    return run("bench_leak", measure, args)


if __name__ == "__main__":
    sys.exit(main())
