"""Report time of `stats`, `table`, `tree`, `flamegraph` and `export --format pprof` on
native captures of the benchmark workloads: the first run with an empty symbol cache
(cold), then REPEATS runs with the persistent cache filled (warm; target <= 1 s each).

    python benchmarks/bench_report.py                    # numpy_work and pure_python
    python benchmarks/bench_report.py -w numpy_work -r 7 --scale 0.5
    python benchmarks/bench_report.py --smoke            # numpy_work at scale 0.01, once

Each report is a whole `python -m memtrace_tui ...` process, as a user runs it. Also
prints load_profile in process (names from the warm symbol cache): its time and the
call tree's size.
Speed figures live here, never in timed tests.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import HERE, Failed, Results, child_env, parser, run

REPORTS = {
    "stats": ["stats"],
    "table": ["table"],
    "table --leaks": ["table", "--leaks"],
    "tree": ["tree"],
    "flamegraph": ["flamegraph", "-o", "{out}/flame.html"],
    "export pprof": ["export", "--format", "pprof", "-o", "{out}/p.pb.gz"],
}
TARGET_S = 1.0

SPLIT = """
import json, sys, time
from memtrace_core.report.profile import Selection, load_profile
t0 = time.perf_counter(); p = load_profile(sys.argv[1], Selection.ALL)
t1 = time.perf_counter()
print(json.dumps({"seconds": t1 - t0, "stacks": p.reader.n_stacks,
                  "nodes": p.tree.node_count()}))
"""


def memtrace(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall seconds of one `python -m memtrace_tui ARGS` process; Failed if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "memtrace_tui", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise Failed(f"memtrace {' '.join(args)} exited {proc.returncode}:\n"
                     f"{proc.stderr.decode(errors='replace').strip()[-500:]}")
    return elapsed


def bench_workload(name: str, work: Path, env: dict[str, str], repeats: int,
                   results: Results) -> None:
    capture = work / f"{name}.mtrace"
    script = HERE / "workloads" / f"{name}.py"
    memtrace(["run", "--native", "-o", str(capture), "--force", str(script)], env, work)
    size = capture.stat().st_size
    print(f"\n{name}: native capture {size / 1e6:.1f} MB")
    results.figure(f"{name}/capture_bytes", size, "B", better="none")
    shutil.rmtree(work / "cache", ignore_errors=True)
    cold = memtrace(["table", str(capture)], env, work)
    results.figure(f"{name}/table_cold_s", round(cold, 3), "s")
    print(f"  table with an empty symbol cache (cold): {cold:.2f} s")
    print(f"  {'report':<14} {'warm median s':>14} {'min':>6}  target")
    for label, template in REPORTS.items():
        argv = [a.format(out=work) for a in template] + [str(capture)]
        warm = [memtrace(argv, env, work) for _ in range(repeats)]
        med = statistics.median(warm)
        results.figure(f"{name}/{label.replace(' ', '_')}/warm_s", round(med, 3), "s")
        ok = "ok" if med <= TARGET_S else "MISSED"
        print(f"  {label:<14} {med:14.2f} {min(warm):6.2f}  <= {TARGET_S:.1f} s {ok}")
    split = subprocess.run([sys.executable, "-c", SPLIT, str(capture)], env=env,
                           capture_output=True, text=True)
    if split.returncode != 0:
        raise Failed(f"load_profile in process failed:\n{split.stderr.strip()[-500:]}")
    got = json.loads(split.stdout)
    results.figure(f"{name}/load_profile_s", round(got["seconds"], 3), "s")
    results.figure(f"{name}/tree_nodes", got["nodes"], "nodes", better="none")
    print(f"  in process: load_profile {got['seconds']:.3f} s ({got['stacks']} stacks, "
          f"{got['nodes']} tree nodes)")


def measure(args: argparse.Namespace, results: Results) -> None:
    with tempfile.TemporaryDirectory(prefix="mt-bench-report-") as tmp:
        work = Path(tmp)
        env = child_env(XDG_CACHE_HOME=str(work / "cache"), MT_BENCH_SCALE=str(args.scale),
                        OPENBLAS_NUM_THREADS="1")
        for name in args.workloads:
            bench_workload(name, work, env, args.repeats, results)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("-w", "--workloads", default="numpy_work,pure_python")
    ap.add_argument("-r", "--repeats", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0, help="workload size multiplier")
    args = ap.parse_args(argv)
    if args.smoke:  # numpy: native names from a C extension, libpython and libc
        args.workloads, args.repeats, args.scale = "numpy_work", 1, 0.01
    args.workloads = [w for w in args.workloads.split(",") if w]
    for name in args.workloads:
        if not (HERE / "workloads" / f"{name}.py").exists():
            ap.error(f"no workload {name!r} in {HERE / 'workloads'}")
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    return run("bench_report", measure, args)


if __name__ == "__main__":
    sys.exit(main())
