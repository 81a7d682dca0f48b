"""Attach: time from the command to the first data, and the target's slow-down while attached.

1. Time to first data: `memtrace attach PID -o FILE --duration 0.3` against targets in
   different states (busy in Python, sleeping in time.sleep, blocked in a pipe read, several
   threads); measured from launching the command to the first bytes of the stream reaching
   the capture file (the tracer writes its header as soon as it starts), and to the
   tracer's own start_time. Target: <= 2 s.
2. Slow-down: a driver runs one of bench_run.py's workloads over and over and reports each
   round's duration; medians of the rounds before attach, while attached (`memtrace attach`
   plain and --native) and after detach (which should match "before" again).

    python benchmarks/bench_attach.py               # both parts
    python benchmarks/bench_attach.py --rounds 7 --scale 0.3 -w pure_python,malloc_free

Speed figures live here, never in timed tests.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET_PYTHON = os.path.realpath(sys.executable)  # same build, memtrace not on its path
FIRST_DATA_TARGET_S = 2.0

STATE_TARGETS = {
    "busy-python": "import time\nprint('ready', flush=True)\nx = 0\n"
                   "while True:\n    x = [i for i in range(1000)]\n",
    "time.sleep": "import time\nprint('ready', flush=True)\ntime.sleep(600)\n",
    "pipe-read": "import sys\nprint('ready', flush=True)\nsys.stdin.buffer.read()\n",
    "threads": "import threading, time\n"
               "def work():\n    while True:\n        [str(i) for i in range(500)]\n"
               "for _ in range(3):\n    threading.Thread(target=work, daemon=True).start()\n"
               "print('ready', flush=True)\ntime.sleep(600)\n",
}

DRIVER = """
import os, runpy, sys, time, io, contextlib
path = sys.argv[1]
print("ready", flush=True)
while True:
    t0 = time.time()
    with contextlib.redirect_stdout(io.StringIO()):
        runpy.run_path(path, run_name="__main__")
    print("round", t0, time.time(), flush=True)
"""


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    return env


def target_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MEMTRACE"))}
    env.update(extra)
    return env


def start(code: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([TARGET_PYTHON, "-c", code, *args], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("ready"), line
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def first_data(tmp: Path, repeats: int) -> None:
    """Part 1: command -> first bytes in the capture file, per target state."""
    from memtrace_core.reader import read_capture

    print(f"time from `memtrace attach` to first data (median / max of {repeats}; "
          f"target <= {FIRST_DATA_TARGET_S:g} s)")
    print(f"  {'target':<14}{'first bytes':>14}{'tracer start':>15}{'max':>9}")
    for name, code in STATE_TARGETS.items():
        proc = start(code, target_env())
        firsts, starts = [], []
        try:
            for i in range(repeats):
                capture = tmp / f"{name}-{i}.mtrace"
                launched_wall = time.time()
                launched = time.monotonic()
                cli = subprocess.Popen(
                    [sys.executable, "-m", "memtrace_core", "attach", str(proc.pid), "-o",
                     str(capture), "--duration", "0.3"],
                    env=cli_env(), stderr=subprocess.PIPE, text=True)
                seen = None
                while cli.poll() is None or seen is None:
                    if seen is None and capture.exists() and capture.stat().st_size > 0:
                        seen = time.monotonic() - launched
                    if cli.poll() is not None and seen is None:
                        break
                    time.sleep(0.002)
                _, err = cli.communicate()
                if cli.returncode != 0 or seen is None:
                    print(f"  {name}: attach failed: {err.strip()}")
                    break
                firsts.append(seen)
                starts.append(read_capture(capture).header["start_time"] - launched_wall)
        finally:
            stop(proc)
        if firsts:
            verdict = "ok" if max(firsts) <= FIRST_DATA_TARGET_S else "SLOW"
            print(f"  {name:<14}{statistics.median(firsts):>12.3f} s"
                  f"{statistics.median(starts):>13.3f} s{max(firsts):>7.2f} s  {verdict}")


def build_churn(tmp: Path) -> Path:
    lib = tmp / "libchurn.so"
    subprocess.run(["gcc", "-O2", "-fPIC", "-shared", str(HERE / "workloads" / "churn.c"),
                    "-o", str(lib)], check=True)
    return lib


class Rounds(threading.Thread):
    """Collects the driver's (start, end) round times."""

    def __init__(self, proc: subprocess.Popen) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.rounds: list[tuple[float, float]] = []

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if parts and parts[0] == "round":
                self.rounds.append((float(parts[1]), float(parts[2])))

    def wait_rounds(self, count: int, after: float, timeout: float = 300) -> None:
        end = time.monotonic() + timeout
        while sum(1 for s, _ in self.rounds if s >= after) < count:
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError("the driver stopped producing rounds")
            time.sleep(0.05)

    def between(self, lo: float, hi: float) -> list[float]:
        return [e - s for s, e in self.rounds if s >= lo and e <= hi]


def slowdown(tmp: Path, workloads: list[str], rounds: int, scale: float) -> None:
    """Part 2: per-round time before / while / after attach."""
    print(f"\ntarget slow-down while attached (median round time of {rounds} rounds, "
          f"MT_BENCH_SCALE={scale:g})")
    print(f"  {'workload':<13}{'mode':<17}{'before':>9}{'attached':>10}{'after':>9}"
          f"{'ratio':>8}{'after/before':>14}")
    churn = build_churn(tmp)
    for workload in workloads:
        for options in ((), ("--native",)):
            env = target_env(MT_BENCH_SCALE=str(scale), MT_BENCH_CHURN_LIB=str(churn))
            proc = start(DRIVER, env, str(HERE / "workloads" / f"{workload}.py"))
            collector = Rounds(proc)
            collector.start()
            try:
                collector.wait_rounds(rounds + 1, 0)  # the first round warms up
                t_attach = time.time()
                cli = subprocess.Popen(
                    [sys.executable, "-m", "memtrace_core", "attach", str(proc.pid), *options,
                     "-o", str(tmp / f"{workload}{''.join(options)}.mtrace"), "--force"],
                    env=cli_env(), stderr=subprocess.PIPE, text=True)
                assert cli.stderr is not None
                line = cli.stderr.readline()
                if "attached" not in line:
                    print(f"  {workload}: attach failed: {line.strip()}")
                    continue
                attached = time.time()
                collector.wait_rounds(rounds, attached)
                detach = time.time()
                cli.send_signal(signal.SIGINT)
                cli.communicate(timeout=60)
                detached = time.time()
                collector.wait_rounds(rounds, detached)
                before = statistics.median(collector.between(0, t_attach)[1:])
                during = statistics.median(collector.between(attached, detach))
                after = statistics.median(collector.between(detached, time.time()))
                mode = "attach" + ("".join(f" {o}" for o in options))
                print(f"  {workload:<13}{mode:<17}{before:>8.3f}s{during:>9.3f}s"
                      f"{after:>8.3f}s{during / before:>7.2f}x{after / before:>13.2f}x")
            finally:
                stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--repeats", type=int, default=5, help="attaches per target")
    parser.add_argument("--rounds", type=int, default=5, help="workload rounds per phase")
    parser.add_argument("--scale", type=float, default=0.3, help="MT_BENCH_SCALE per round")
    parser.add_argument("-w", "--workloads", default="pure_python,malloc_free,numpy_work")
    parser.add_argument("--skip-first-data", action="store_true")
    parser.add_argument("--skip-slowdown", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="bench-attach-") as tmp:
        if not args.skip_first_data:
            first_data(Path(tmp), args.repeats)
        if not args.skip_slowdown:
            slowdown(Path(tmp), args.workloads.split(","), args.rounds, args.scale)


if __name__ == "__main__":
    main()
