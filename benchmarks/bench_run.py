"""Run-time overhead of `memtrace run` next to memray's, on the same machine, in one session.

Every (workload, mode) pair is run REPEATS times, round-robin (one run of each pair per
round), so a slow patch of the machine hits every mode alike; medians are reported with the
ratio to the untraced run, then capture file sizes and bytes per allocation record.

    python benchmarks/bench_run.py                 # defaults: 5 rounds, all workloads/modes
    python benchmarks/bench_run.py -r 11 -w pure_python,malloc_free -m untraced,memtrace
    python benchmarks/bench_run.py --scale 0.3     # quicker, noisier
    python benchmarks/bench_run.py --json run.json # also the figures as JSON (compare.py)
    python benchmarks/bench_run.py --smoke         # one round at scale 0.01: does it all run?
    python benchmarks/bench_run.py -w threads_1,threads_2,threads_8   # the scaling table

Modes: untraced; memtrace and memray, each plain and --native (and --follow-fork on the
pool workload); memtrace-sample[-native] is `memtrace run --sample 512KiB`. The threads_N
workloads run the same malloc/free work on N threads at once (thread-scaling table). The
pandas and PyTorch workloads are skipped (one line) when their package is not installed.

Speed figures live here, never in timed tests. memray's modes are skipped (one line says so)
when memray is not importable.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import (
    HERE,
    REPO,
    Results,
    build_churn,
    child_env,
    memray_available,
    parser,
    run,
)

WORKLOADS = ("empty", "pure_python", "numpy_work", "malloc_free", "pandas_merge", "pool",
             "threads_1", "threads_2", "threads_8", "threads_idle", "torch_train")
# workloads that need a package the bench extra does not bring: skipped (one line) without it
OPTIONAL = {"pandas_merge": "pandas", "torch_train": "torch"}
MODES = ("untraced", "memtrace", "memtrace-native", "memray", "memray-native",
         "memtrace-follow", "memray-follow", "memtrace-sample", "memtrace-sample-native")
SAMPLE = "512KiB"
THREAD_COUNTS = (1, 2, 8)
# issue 14: --sample 512KiB costs at most this ratio to untraced on every workload, and
# its capture is at most this fraction of exact mode's
SAMPLE_TARGET = 1.05
SAMPLE_SIZE_TARGET = 1 / 20
# issue 2 targets: ratio to untraced (plain, --native); start-up in absolute seconds
TARGETS = {
    "pure_python": (1.3, 1.5),
    "numpy_work": (1.1, 1.3),
    "malloc_free": (1.5, 1.8),
}
STARTUP_TARGET_S = 0.15


@dataclass
class Cell:
    """Timings and the last capture of one (workload, mode) pair."""

    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user+system seconds of the run's processes
    capture_bytes: int | None = None
    allocations: int | None = None
    failure: str | None = None
    hangs: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else float("nan")


def command(python: str, mode: str, script: Path, capture: Path) -> list[str]:
    """The argv that runs SCRIPT in MODE, writing its capture to CAPTURE."""
    native = ["--native"] if mode.endswith("-native") else []
    native += ["--follow-fork"] if mode.endswith("-follow") else []  # children traced too
    native += ["--sample", SAMPLE] if "-sample" in mode else []
    if mode == "untraced":
        return [python, str(script)]
    if mode.startswith("memtrace"):
        return [python, "-m", "memtrace_tui", "run", *native, "-o", str(capture), "--force",
                str(script)]  # fmt: skip
    return [python, "-m", "memray", "run", *native, "-q", "-f", "-o", str(capture), str(script)]


def workload_script(workload: str) -> tuple[Path, dict[str, str]]:
    """The script that runs WORKLOAD and the environment it adds (threads_N: N threads)."""
    if workload == "threads_idle":  # one busy thread beside an idle pool of 200
        return HERE / "workloads" / "threads.py", {"MT_BENCH_THREADS": "1", "MT_BENCH_IDLE": "200"}
    if workload.startswith("threads_"):
        return HERE / "workloads" / "threads.py", {"MT_BENCH_THREADS": workload[8:]}
    return HERE / "workloads" / f"{workload}.py", {}


def capture_path(work: Path, workload: str, mode: str) -> Path:
    suffix = ".bin" if mode.startswith("memray") else ".mtrace"
    return work / f"{workload}.{mode}{suffix}"


def count_allocations(python: str, mode: str, capture: Path, env: dict[str, str]) -> int | None:
    """Allocation records in a capture, read by its own tool (in a subprocess, untimed)."""
    if mode.startswith("memray"):
        # memray's own count of allocations (its header's total counts frees as well)
        out = capture.with_suffix(".stats.json")
        proc = subprocess.run(
            [python, "-m", "memray", "stats", "--json", "-f", "-o", str(out), str(capture)],
            capture_output=True,
            env=env,
        )
        if proc.returncode != 0 or not out.exists():
            return None
        return int(json.loads(out.read_text())["total_num_allocations"])
    proc = subprocess.run(
        [python, "-m", "memtrace_tui", "stats", "--json", str(capture)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        return None
    return int(json.loads(proc.stdout)["total_allocations"])


def run_all(args: argparse.Namespace) -> dict[tuple[str, str], Cell]:
    """Round-robin over every (workload, mode) pair, ARGS.repeats rounds."""
    work = Path(tempfile.mkdtemp(prefix="memtrace-bench-"))
    env = child_env(MT_BENCH_CHURN_LIB=str(build_churn(work)), MT_BENCH_SCALE=str(args.scale))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # keep numpy's timing about allocation
    cells = {(w, m): Cell() for w in args.workloads for m in args.modes}
    byte_compile(args.python)
    try:
        for round_no in range(args.repeats):
            for workload in args.workloads:
                script, extra = workload_script(workload)
                for mode in args.modes:
                    cell = cells.get((workload, mode))
                    if cell is None or cell.failure:
                        continue
                    capture = capture_path(work, workload, mode)
                    argv = command(args.python, mode, script, capture)
                    start = time.perf_counter()
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    try:
                        proc = subprocess.run(argv, cwd=work, env={**env, **extra},
                                              capture_output=True, timeout=args.timeout)
                    except subprocess.TimeoutExpired:
                        cell.hangs += 1  # counted and reported; the next round tries again
                        continue
                    elapsed = time.perf_counter() - start
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    if proc.returncode != 0:
                        cell.failure = proc.stderr.decode(errors="replace").strip()[-300:]
                        continue
                    cell.times.append(elapsed)
                    cell.cpu.append(after.ru_utime + after.ru_stime
                                    - before.ru_utime - before.ru_stime)
                    if capture.exists():
                        cell.capture_bytes = capture.stat().st_size
            print(f"round {round_no + 1}/{args.repeats} done", file=sys.stderr, flush=True)
        for (workload, mode), cell in cells.items():
            capture = capture_path(work, workload, mode)
            if mode != "untraced" and capture.exists() and not cell.failure:
                cell.allocations = count_allocations(args.python, mode, capture, env)
    finally:
        if args.keep:
            print(f"captures kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return cells


def byte_compile(python: str) -> None:
    """Compile memtrace's modules to .pyc first, as an installed memtrace (and memray, and
    numpy) has them: with PYTHONDONTWRITEBYTECODE set, a checkout would otherwise compile
    its modules from source at every traced run's start-up and count it as overhead."""
    subprocess.run([python, "-m", "compileall", "-q", str(REPO / "memtrace_core"),
                    str(REPO / "memtrace_tui")], check=True, capture_output=True)


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def report(args: argparse.Namespace, cells: dict[tuple[str, str], Cell],
           results: Results) -> None:
    """Print the tables and record the figures; failed or hung runs are failures."""
    ratio_table(args, cells, results, "wall")
    ratio_table(args, cells, results, "cpu")

    print("\ncapture size, allocation records, bytes per allocation record")
    for workload in args.workloads:
        for mode in args.modes:
            cell = cells.get((workload, mode))
            if mode == "untraced" or cell is None or cell.failure:
                continue
            if cell.times and cell.allocations is None:
                results.fail(f"{workload} / {mode}: its capture could not be read back "
                             "(no allocation count)")
            per = None
            if cell.capture_bytes and cell.allocations:
                per = cell.capture_bytes / cell.allocations
            results.figure(f"{workload}/{mode}/capture_bytes", cell.capture_bytes, "B")
            results.figure(f"{workload}/{mode}/allocations", cell.allocations, "records",
                           better="none")
            results.figure(f"{workload}/{mode}/bytes_per_alloc",
                           None if per is None else round(per, 3), "B")
            allocs = "-" if cell.allocations is None else f"{cell.allocations:,}"
            per_text = "-" if per is None else f"{per:.2f} B/alloc"
            print(f"{workload:<14}{mode:<17}{human_bytes(cell.capture_bytes):>12}{allocs:>15}"
                  f"  {per_text}")

    thread_scaling(args, cells, results)
    sampling_targets(args, cells)

    print("\ntargets (issue 2; CPU ratios)")
    for workload, (plain, native) in TARGETS.items():
        if workload not in args.workloads:
            continue
        for mode, target in (("memtrace", plain), ("memtrace-native", native)):
            ratio = _ratio(cells, workload, mode)
            if ratio is None:
                continue
            verdict = "ok" if ratio <= target else f"MISSED by {ratio / target - 1:.0%}"
            print(f"  {workload:<14}{mode:<17}{ratio:5.2f}x  target <= {target}x  {verdict}")
    empty = cells.get(("empty", "memtrace"))
    base = cells.get(("empty", "untraced"))
    if empty is not None and empty.times:
        extra = (
            f" ({empty.median - base.median:+.3f}s over untraced)" if base and base.times else ""
        )
        verdict = "ok" if empty.median <= STARTUP_TARGET_S else "MISSED"
        print(
            f"  start-up      memtrace run      {empty.median:.3f}s{extra}  "
            f"target <= {STARTUP_TARGET_S}s  {verdict}"
        )
    for (workload, mode), cell in cells.items():
        if cell.hangs:
            results.fail(f"{workload} / {mode}: {cell.hangs} run(s) hung "
                         f"(killed after {args.timeout} s)")
        if cell.failure:
            results.fail(f"{workload} / {mode} failed:\n{cell.failure}")


# What each table shows: its title, the samples of a cell, and the names of its figures.
TABLES = {
    "wall": ("median wall seconds of {n} interleaved runs (ratio to untraced)",
             lambda cell: cell.times, "seconds", "ratio"),
    "cpu": ("median CPU seconds (user+system, all processes) of {n} runs (ratio to untraced); "
            "firmer than wall time on a busy box",
            lambda cell: cell.cpu, "cpu_seconds", "cpu_ratio"),
}


def ratio_table(args: argparse.Namespace, cells: dict[tuple[str, str], Cell],
                results: Results, kind: str) -> None:
    """One table of medians per workload and mode, each with its ratio to the untraced run."""
    title, samples_of, figure, ratio_figure = TABLES[kind]
    print("\n" + title.format(n=args.repeats))
    width = max(22, 2 + max(map(len, args.modes)))
    print("workload".ljust(14) + "".join(m.rjust(width) for m in args.modes))
    for workload in args.workloads:
        base = cells.get((workload, "untraced"))
        base_samples = samples_of(base) if base is not None else []
        row = workload.ljust(14)
        for mode in args.modes:
            cell = cells.get((workload, mode))
            if cell is None:
                row += "-".rjust(width)
                continue
            samples = samples_of(cell)
            if cell.failure or not samples:
                state = "FAILED" if cell.failure else "HUNG" if cell.hangs else "-"
                row += (state if kind == "wall" else "-").rjust(width)
                continue
            median = statistics.median(samples)
            results.figure(f"{workload}/{mode}/{figure}", round(median, 4), "s")
            text = f"{median:.3f}s"
            if base_samples and mode != "untraced":
                ratio = median / statistics.median(base_samples)
                results.figure(f"{workload}/{mode}/{ratio_figure}", round(ratio, 3), "x")
                text += f" {ratio:5.2f}x"
            if kind == "wall" and cell.hangs:
                text = f"[{cell.hangs} hung] " + text
            row += text.rjust(width)
        print(row)


def _ratio(cells: dict[tuple[str, str], Cell], workload: str, mode: str) -> float | None:
    """The CPU ratio to the untraced run: under load an untraced run may wait for a core
    longer than a traced one, so wall ratios can read as nonsense (0.57x once)."""
    base, cell = cells.get((workload, "untraced")), cells.get((workload, mode))
    if not base or not base.cpu or not cell or not cell.cpu:
        return None
    return cell.cpu_median / base.cpu_median


def thread_scaling(args: argparse.Namespace, cells: dict[tuple[str, str], Cell],
                   results: Results) -> None:
    """Ratio to untraced of the same work on 1, 2 and 8 threads (and on one beside 200 idle
    ones), one row per mode."""
    names = [n for n in [f"threads_{k}" for k in THREAD_COUNTS] + ["threads_idle"]
             if n in args.workloads]
    if not names:
        return
    print("\nthread scaling: the same malloc/free work on N threads at once "
          "(CPU ratio to untraced)")
    print("mode".ljust(24) + "".join(
        ("1 + 200 idle" if n == "threads_idle" else f"{n[8:]} thread(s)").rjust(14)
        for n in names))
    for mode in args.modes:
        if mode == "untraced" or mode.endswith("-follow"):
            continue
        row = mode.ljust(24)
        for name in names:
            ratio = _ratio(cells, name, mode)
            row += ("-" if ratio is None else f"{ratio:.2f}x").rjust(14)
        print(row)
    base = [cells.get((n, "untraced")) for n in names]
    print("untraced CPU seconds".ljust(24) + "".join(
        ("-" if not c or not c.cpu else f"{c.cpu_median:.3f}s").rjust(14) for c in base))


def sampling_targets(args: argparse.Namespace, cells: dict[tuple[str, str], Cell]) -> None:
    """Issue 14: --sample 512KiB at most 1.05x untraced, capture at most 1/20 of exact's."""
    rows = []
    for workload in args.workloads:
        for mode, exact in (("memtrace-sample", "memtrace"),
                            ("memtrace-sample-native", "memtrace-native")):
            ratio = _ratio(cells, workload, mode)
            if ratio is None or workload == "empty":
                continue
            verdict = ("ok" if ratio <= SAMPLE_TARGET
                       else f"MISSED by {ratio / SAMPLE_TARGET - 1:.0%}")
            size = ""
            sampled, full = cells.get((workload, mode)), cells.get((workload, exact))
            if sampled and full and sampled.capture_bytes and full.capture_bytes:
                share = sampled.capture_bytes / full.capture_bytes
                size = (f"  capture 1/{1 / share:.0f} of exact "
                        f"({'ok' if share <= SAMPLE_SIZE_TARGET else 'MISSED'})")
            rows.append(f"  {workload:<14}{mode:<24}{ratio:5.2f}x  target <= {SAMPLE_TARGET}x"
                        f"  {verdict}{size}")
    if rows:
        print(f"\ntargets (issue 14, --sample {SAMPLE}; CPU ratios)")
        print("\n".join(rows))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = parser(__doc__)
    ap.add_argument("-r", "--repeats", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("-w", "--workloads", default=",".join(WORKLOADS),
                    help="comma-separated subset")
    ap.add_argument("-m", "--modes", default=",".join(MODES), help="comma-separated subset")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="work multiplier (1.0 = ~1 s untraced)")
    ap.add_argument("--python", default=sys.executable, help="interpreter to benchmark")
    ap.add_argument("--timeout", type=float, default=60,
                    help="seconds before a run counts as hung")
    ap.add_argument("--keep", action="store_true", help="keep the captures' directory")
    args = ap.parse_args(argv)
    if args.smoke:  # every workload and mode, once, tiny
        args.repeats, args.scale = 1, 0.01
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.modes = [m for m in args.modes.split(",") if m]
    for name, known in (("workload", WORKLOADS), ("mode", MODES)):
        for value in getattr(args, f"{name}s"):
            if value not in known:
                ap.error(f"unknown {name} {value!r}; choose from {', '.join(known)}")
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    return args


def measure(args: argparse.Namespace, results: Results) -> None:
    if any(m.startswith("memray") for m in args.modes) and not memray_available(results):
        args.modes = [m for m in args.modes if not m.startswith("memray")]
    for workload, package in OPTIONAL.items():
        if workload in args.workloads and subprocess.run(
                [args.python, "-c", f"import {package}"], capture_output=True).returncode != 0:
            results.skip(workload, f"{package} is not installed (pip install {package})")
            args.workloads = [w for w in args.workloads if w != workload]
    report(args, run_all(args), results)


def main(argv: list[str] | None = None) -> int:
    return run("bench_run", measure, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
