"""Report time of `stats`, `table`, `tree`, `flamegraph` and `export --format pprof` on
native captures of the benchmark workloads: the first run with an empty symbol cache
(cold), then REPEATS runs with the persistent cache filled (warm; target <= 1 s each).

    python benchmarks/bench_report.py                    # numpy_work and pure_python
    python benchmarks/bench_report.py -w numpy_work -r 7 --scale 0.5

Each report is a whole `python -m memtrace_core ...` process, as a user runs it. Also
prints load_profile in process (names from the warm symbol cache): its time and the
call tree's size.
Speed figures live here, never in timed tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
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
import sys, time
from memtrace_core.report.profile import Selection, load_profile
t0 = time.perf_counter(); p = load_profile(sys.argv[1], Selection.ALL)
t1 = time.perf_counter()
print(f"load_profile: {t1 - t0:.3f} s ({p.reader.n_stacks} stacks, "
      f"{p.tree.node_count()} tree nodes)")
"""


def run(args: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "memtrace_core", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"memtrace {' '.join(args)} failed:\n{proc.stderr.decode()}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-w", "--workloads", default="numpy_work,pure_python")
    parser.add_argument("-r", "--repeats", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="workload size multiplier")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mt-bench-report-") as tmp:
        work = Path(tmp)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        env["XDG_CACHE_HOME"] = str(work / "cache")
        env["MT_BENCH_SCALE"] = str(args.scale)
        for name in args.workloads.split(","):
            capture = work / f"{name}.mtrace"
            script = HERE / "workloads" / f"{name}.py"
            run(["run", "--native", "-o", str(capture), "--force", str(script)], env, work)
            size = capture.stat().st_size / 1e6
            print(f"\n{name}: native capture {size:.1f} MB")
            shutil.rmtree(work / "cache", ignore_errors=True)
            cold = run(["table", str(capture)], env, work)
            print(f"  table with an empty symbol cache (cold): {cold:.2f} s")
            print(f"  {'report':<14} {'warm median s':>14} {'min':>6}  target")
            for label, template in REPORTS.items():
                argv_ = [a.format(out=work) for a in template] + [str(capture)]
                warm = [run(argv_, env, work) for _ in range(args.repeats)]
                med = statistics.median(warm)
                ok = "ok" if med <= TARGET_S else "MISSED"
                print(f"  {label:<14} {med:14.2f} {min(warm):6.2f}  <= {TARGET_S:.1f} s {ok}")
            split = subprocess.run(
                [sys.executable, "-c", SPLIT, str(capture)], env=env, capture_output=True, text=True
            )
            print("  in process:", split.stdout.strip() or split.stderr[-300:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
