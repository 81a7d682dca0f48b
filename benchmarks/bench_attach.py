"""Attach: time from the command to the first data, and the target's slow-down while attached.

1. Time to first data: `memtrace attach PID -o FILE --duration 0.3` against targets in
   different states (busy in Python, sleeping in time.sleep, blocked in a pipe read, several
   threads); measured from launching the command to the first bytes of the stream reaching
   the capture file (the tracer writes its header as soon as it starts). Target: <= 1 s
   median. For memtrace's own injector also the time one target thread is held (from
   PTRACE_SEIZE to detach, as the command reports it): target <= 50 ms. The same for
   `--method gdb` and for `memray attach` (gdb) in the same run.
2. Slow-down: a driver runs one of bench_run.py's workloads over and over and reports each
   round's duration; medians of the rounds before attach, while attached (`memtrace attach`
   plain and --native) and after detach (which should match "before" again).

    python benchmarks/bench_attach.py               # both parts
    python benchmarks/bench_attach.py --rounds 7 --scale 0.3 -w pure_python,malloc_free
    python benchmarks/bench_attach.py --smoke       # one attach per tool, one small workload

Speed figures live here, never in timed tests. `--method gdb` is skipped when gdb is not
installed, memray when it is not importable (one line says so). memray's own attach failing
on a target (it needs the target to run Python code) is printed, not a failure of the run;
memtrace's attaching and detaching must work everywhere.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import HERE, Failed, Results, build_churn, child_env, memray_available, parser, run

TARGET_PYTHON = os.path.realpath(sys.executable)  # same build, memtrace not on its path
FIRST_DATA_TARGET_S = 1.0
HELD_TARGET_MS = 50.0
ATTACH_GIVE_UP_S = 20.0

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


def target_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MEMTRACE"))}
    env.update(extra)
    return env


def start(code: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([TARGET_PYTHON, "-c", code, *args], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        stop(proc)
        raise Failed(f"the target did not start: {line.strip()!r}")
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


HELD = re.compile(r"one thread held ([\d.]+) ms")


def attach_command(tool: str, pid: int, capture: Path) -> list[str]:
    if tool == "memray":
        return [sys.executable, "-m", "memray", "attach", str(pid), "-o", str(capture),
                "--duration", "1", "-f"]
    method = tool.split("--method ")[1] if "--method" in tool else "ptrace"
    return [sys.executable, "-m", "memtrace_tui", "attach", str(pid), "-o", str(capture),
            "--duration", "0.3", "--method", method]


def first_data(tmp: Path, repeats: int, plan: dict[str, list[str]], results: Results) -> None:
    """Part 1: command -> first bytes in the capture file, per tool and the target states
    PLAN gives it; for memtrace's own injector also how long the target's thread was held
    (seize to detach). memtrace failing to attach is a failure; memray is only reported."""
    print(f"time from the attach command to first data (median / max of {repeats}; target "
          f"<= {FIRST_DATA_TARGET_S:g} s), and the time a target thread is held by "
          f"memtrace's injector (attach / detach; target <= {HELD_TARGET_MS:g} ms)")
    print(f"  {'target':<13}{'tool':<22}{'first data':>11}{'max':>8}{'held':>10}{'max':>9}")
    for name, code in STATE_TARGETS.items():
        for tool in [t for t, states in plan.items() if name in states]:
            env = target_env()
            if tool == "memray":  # memray must be importable inside the target
                import memray

                env["PYTHONPATH"] = str(Path(memray.__file__).resolve().parents[1])
            proc = start(code, env)
            firsts: list[float] = []
            held: list[float] = []
            try:
                for i in range(repeats):
                    capture = tmp / f"{name}-{tool.replace(' ', '')}-{i}.mtrace"
                    launched = time.monotonic()
                    cli = subprocess.Popen(attach_command(tool, proc.pid, capture),
                                           env=child_env(), stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE, text=True)
                    seen = None
                    while cli.poll() is None or seen is None:
                        if seen is None and capture.exists() and capture.stat().st_size > 0:
                            seen = time.monotonic() - launched
                        if cli.poll() is not None and seen is None:
                            break
                        if time.monotonic() - launched > ATTACH_GIVE_UP_S:
                            cli.kill()
                            break
                        time.sleep(0.002)
                    _, err = cli.communicate()
                    if cli.returncode == -signal.SIGKILL:
                        err = f"no data within {ATTACH_GIVE_UP_S:g} s (killed)"
                    if cli.returncode != 0 or seen is None:
                        why = f"{err.strip().splitlines()[-1:]}"
                        print(f"  {name:<13}{tool:<22}attach failed: {why}")
                        if tool.startswith("memtrace"):
                            results.fail(f"{tool} on a {name} target: {why}")
                        break
                    firsts.append(seen)
                    held += [float(ms) for ms in HELD.findall(err)]
            finally:
                stop(proc)
            if not firsts:
                continue
            verdict = "ok" if max(firsts) <= FIRST_DATA_TARGET_S else "SLOW"
            held_cols = (f"{statistics.median(held):>7.1f} ms{max(held):>6.1f} ms"
                         if held else f"{'-':>10}{'-':>9}")
            if held and max(held) > HELD_TARGET_MS:
                verdict += " HELD-LONG"
            key = f"first_data/{name}/{tool.replace(' --method ', '-')}"
            results.figure(f"{key}/median_s", round(statistics.median(firsts), 4), "s")
            results.figure(f"{key}/max_s", round(max(firsts), 4), "s")
            if held:
                results.figure(f"{key}/held_median_ms", round(statistics.median(held), 2), "ms")
                results.figure(f"{key}/held_max_ms", round(max(held), 2), "ms")
            elif tool == "memtrace":
                results.fail(f"memtrace attach on a {name} target did not report the time "
                             "a thread was held")
            print(f"  {name:<13}{tool:<22}{statistics.median(firsts):>9.3f} s"
                  f"{max(firsts):>6.2f} s{held_cols}  {verdict}")


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


def slowdown(tmp: Path, workloads: list[str], rounds: int, scale: float,
             results: Results) -> None:
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
                    [sys.executable, "-m", "memtrace_tui", "attach", str(proc.pid), *options,
                     "-o", str(tmp / f"{workload}{''.join(options)}.mtrace"), "--force"],
                    env=child_env(), stderr=subprocess.PIPE, text=True)
                assert cli.stderr is not None
                line = cli.stderr.readline()
                if "attached" not in line:
                    print(f"  {workload}: attach failed: {line.strip()}")
                    results.fail(f"memtrace attach {' '.join(options)} on the {workload} "
                                 f"driver: {line.strip()}")
                    cli.kill()
                    cli.communicate()
                    continue
                attached = time.time()
                collector.wait_rounds(rounds, attached)
                detach = time.time()
                cli.send_signal(signal.SIGINT)
                _, err = cli.communicate(timeout=60)
                if cli.returncode != 0:
                    raise Failed(f"memtrace attach {' '.join(options)} on the {workload} "
                                 f"driver exited {cli.returncode} on detach: {err.strip()}")
                detached = time.time()
                collector.wait_rounds(rounds, detached)
                before = statistics.median(collector.between(0, t_attach)[1:])
                during = statistics.median(collector.between(attached, detach))
                after = statistics.median(collector.between(detached, time.time()))
                mode = "attach" + ("".join(f" {o}" for o in options))
                key = f"slowdown/{workload}/{mode.replace(' --', '-')}"
                results.figure(f"{key}/before_s", round(before, 4), "s")
                results.figure(f"{key}/attached_s", round(during, 4), "s")
                results.figure(f"{key}/after_s", round(after, 4), "s")
                results.figure(f"{key}/ratio", round(during / before, 3), "x")
                results.figure(f"{key}/after_over_before", round(after / before, 3), "x",
                               better="none")
                print(f"  {workload:<13}{mode:<17}{before:>8.3f}s{during:>9.3f}s"
                      f"{after:>8.3f}s{during / before:>7.2f}x{after / before:>13.2f}x")
            finally:
                stop(proc)


def measure(args: argparse.Namespace, results: Results) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-attach-") as tmp:
        if not args.skip_first_data:
            tools = [t.strip() for t in args.tools.split(",") if t.strip()]
            if "memray" in tools and not memray_available(results):
                tools.remove("memray")
            if "memtrace --method gdb" in tools and shutil.which("gdb") is None:
                results.skip("memtrace --method gdb", "gdb is not installed")
                tools.remove("memtrace --method gdb")
            plan = {tool: list(STATE_TARGETS) for tool in tools}
            if args.smoke:  # every tool once; memtrace's own injector in every state
                plan = {tool: states if tool == "memtrace" else [SMOKE_STATE.get(tool, "")]
                        for tool, states in plan.items()}
            first_data(Path(tmp), args.repeats, plan, results)
        if not args.skip_slowdown:
            slowdown(Path(tmp), args.workloads.split(","), args.rounds, args.scale, results)


# the state a tool attaches quickest to: memray's attach needs the target to run Python code
SMOKE_STATE = {"memtrace --method gdb": "time.sleep", "memray": "busy-python"}


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("-r", "--repeats", type=int, default=10, help="attaches per target")
    ap.add_argument("--tools", default="memtrace,memtrace --method gdb,memray",
                    help="comma-separated: memtrace, memtrace --method gdb, memray")
    ap.add_argument("--rounds", type=int, default=5, help="workload rounds per phase")
    ap.add_argument("--scale", type=float, default=0.3, help="MT_BENCH_SCALE per round")
    ap.add_argument("-w", "--workloads", default="pure_python,malloc_free,numpy_work")
    ap.add_argument("--skip-first-data", action="store_true")
    ap.add_argument("--skip-slowdown", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.repeats, args.rounds, args.scale, args.workloads = 1, 1, 0.01, "pure_python"
    return run("bench_attach", measure, args)


if __name__ == "__main__":
    sys.exit(main())
