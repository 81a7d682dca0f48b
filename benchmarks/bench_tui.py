"""Responsiveness and memory of the live TUI (issue 4), printed as figures.

1. Key press -> cursor moved and repainted (p50/p99), and the lateness of a 60 Hz UI timer
   (p50/p99), while `--native` tracing a C malloc/free churn (>= 1M allocations/s) streams
   into the app: the real child runner, pipe, feed thread, model and app (headless driver,
   so the figure is the app's own work, not the terminal's).
2. The traced program's run time under `memtrace live --native` (in tmux, a real terminal)
   next to `memtrace run --native -o FILE`, interleaved rounds, medians and ratio.
3. The app's memory per million live allocations (reader + model), from RSS growth.

    python benchmarks/bench_tui.py            # all three
    python benchmarks/bench_tui.py --only keys --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
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
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bench_run import build_churn  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def child_env(lib: Path, scale: float) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    env["MT_BENCH_CHURN_LIB"] = str(lib)
    env["MT_BENCH_SCALE"] = str(scale)
    return env


# -- 1. key latency and tick lateness --------------------------------------------------------
def bench_keys(lib: Path, seconds: float, script: Path | None = None) -> None:
    from textual import events

    from memtrace_core.model.build import call_tree
    from memtrace_core.model.feed import enlarge_pipe
    from memtrace_core.model.session import Session
    from memtrace_core.reader import StreamReader
    from memtrace_tui.app import MemtraceApp
    from memtrace_tui.live_controller import LiveController
    from memtrace_tui.tree_view import CallTreeView

    script = script or HERE / "workloads" / "malloc_free.py"
    read_fd, write_fd = os.pipe()
    enlarge_pipe(read_fd)
    log = open(os.devnull, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "memtrace_core.tracer.runner", "--fd", str(write_fd),
         "--native", str(script)],
        pass_fds=[write_fd], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        env=child_env(lib, scale=seconds * 3), start_new_session=True)
    os.close(write_fd)
    reader = StreamReader()
    tree = call_tree(reader, native=True)
    session = Session(reader, tree, live=True)
    controller = LiveController(proc, read_fd, session, log_path=None)

    class BenchApp(MemtraceApp):
        def __init__(self) -> None:
            super().__init__(session, controller)
            self.displayed = asyncio.Event()
            self.frame_lateness: list[float] = []
            self._last_frame = 0.0

        def post_display_hook(self) -> None:
            self.displayed.set()

        def on_mount(self) -> None:  # Textual also runs MemtraceApp.on_mount (MRO dispatch)
            self._last_frame = time.monotonic()
            self.set_interval(1 / 60, self._frame)

        def _frame(self) -> None:
            now = time.monotonic()
            self.frame_lateness.append(max(0.0, now - self._last_frame - 1 / 60))
            self._last_frame = now

    handled: list[float] = []

    async def drive() -> tuple[list[float], BenchApp, float, int]:
        app = BenchApp()
        latencies: list[float] = []
        async with app.run_test(size=(140, 45)) as pilot:
            await asyncio.sleep(2.0)  # names arrive, the tree fills
            await pilot.press("e")
            await asyncio.sleep(0.5)
            tree = app.query_one("#tree", CallTreeView)
            allocs0, t0 = reader.total_allocations, time.monotonic()
            app.frame_lateness.clear()
            deadline = time.monotonic() + seconds
            direction = "j"
            while time.monotonic() < deadline and proc.poll() is None:
                if tree.cursor >= tree.row_count - 1:
                    direction = "k"
                elif tree.cursor == 0:
                    direction = "j"
                before = tree.cursor
                app.displayed.clear()
                start = time.perf_counter()
                # what the terminal driver does with a key (Pilot.press would also wait for
                # the whole process to go idle, which never happens while tracing)
                app._driver.send_message(events.Key(direction, direction))
                while tree.cursor == before:
                    await asyncio.sleep(0.0005)
                handled.append(time.perf_counter() - start)
                app.displayed.clear()
                await app.displayed.wait()
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(0.05)
            rate = (reader.total_allocations - allocs0) / (time.monotonic() - t0)
            rows = tree.row_count
            controller.stop_program()
        return latencies, app, rate, rows

    import resource

    wall0 = time.monotonic()
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    try:
        latencies, app, rate, rows = asyncio.run(drive())
    finally:
        if proc.poll() is None:
            proc.kill()
        tree.close()
    wall = time.monotonic() - wall0
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # traced program + symbolizer
    cpu_me = me.ru_utime + me.ru_stime - self0.ru_utime - self0.ru_stime
    print(f"CPU over {wall:.1f} s wall on {os.cpu_count()} cores: app process {cpu_me:.1f} s, "
          f"children (traced program, symbolizer) {kids.ru_utime + kids.ru_stime:.1f} s")
    ms = [x * 1000 for x in latencies]
    late = [x * 1000 for x in app.frame_lateness]
    upd = [x * 1000 for x in controller.feed.update_seconds] if controller.feed else []
    print("session status:", session.status_text())
    print(f"traced program: {rate / 1e6:.2f} M allocations/s (--native) streamed into the app,"
          f" {reader.records:,} records, {session.tree.node_count():,} tree nodes, "
          f"{rows} visible rows")
    print(f"key press -> repaint: n={len(ms)}  p50 {pct(ms, 50):.1f} ms  p99 {pct(ms, 99):.1f} ms"
          f"  max {max(ms, default=float('nan')):.1f} ms   (target p99 <= 100 ms)")
    hm = [x * 1000 for x in handled]
    print(f"key press -> cursor moved (handler done): p50 {pct(hm, 50):.1f} ms  "
          f"p99 {pct(hm, 99):.1f} ms")
    print(f"60 Hz UI timer lateness: n={len(late)}  p50 {pct(late, 50):.1f} ms  "
          f"p99 {pct(late, 99):.1f} ms   (target p99 <= 16 ms)")
    print(f"model update (feed thread): n={len(upd)}  p50 {pct(upd, 50):.2f} ms  "
          f"p99 {pct(upd, 99):.2f} ms")


# -- 2. live vs run ----------------------------------------------------------------------------
def capture_duration(path: Path) -> float:
    from memtrace_core.reader import read_capture

    r = read_capture(path)
    return r.trailer["end_time"] - r.header["start_time"]


def bench_live_vs_run(lib: Path, rounds: int, scale: float) -> None:
    if shutil.which("tmux") is None:
        print("live vs run: skipped (tmux not installed)")
        return
    script = HERE / "workloads" / "malloc_free.py"
    env = child_env(lib, scale)
    times: dict[str, list[float]] = {"run": [], "live": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            cap = Path(tmp) / f"run{i}.mtrace"
            subprocess.run([sys.executable, "-m", "memtrace_core", "run", "--native", "-o",
                            str(cap), "--force", str(script)], env=env, check=True,
                           capture_output=True)
            times["run"].append(capture_duration(cap))
            cap = Path(tmp) / f"live{i}.mtrace"
            name = f"mtbench{os.getpid()}{i}"
            exports = " ".join(f"{k}={v}" for k, v in env.items()
                               if k.startswith(("MT_BENCH", "PYTHONPATH")))
            cmd = (f"env {exports} {sys.executable} -m memtrace_core live --native -o {cap} "
                   f"--force {script}")
            subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "140", "-y", "45",
                            cmd], check=True)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", name],
                                        capture_output=True, text=True).stdout
                if "exited with status" in screen:
                    break
                time.sleep(0.2)
            subprocess.run(["tmux", "send-keys", "-t", name, "q"])
            time.sleep(1.0)
            subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
            times["live"].append(capture_duration(cap))
    run_m, live_m = statistics.median(times["run"]), statistics.median(times["live"])
    print(f"traced program time, malloc/free churn --native, {rounds} interleaved rounds: "
          f"run -o FILE median {run_m:.2f} s, live median {live_m:.2f} s, "
          f"ratio {live_m / run_m:.3f}   (target <= 1.10)")


# -- 3. memory per million live allocations ---------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_memory(millions: float, stacks: int) -> None:
    import msgpack

    from memtrace_core.model.calltree import CallTree
    from memtrace_core.reader import StreamReader

    n = int(millions * 1_000_000)
    pack = msgpack.Packer()
    head = bytearray(b"MEMTRACE")
    head += pack.pack([0, {"format": 1, "pid": 1, "argv": ["x"], "python": "3.11.7",
                           "native": False, "python_allocators": False,
                           "start_time": 0.0, "attached": False, "executable": "x"}])
    node = 0
    leaves = []
    for s in range(stacks):  # stacks of depth 8 sharing prefixes (a realistic trie)
        head += pack.pack([1, s + 1, f"func_{s}", f"/src/mod_{s % 50}.py", 1])
        parent = 0
        for depth in range(8):
            node += 1
            code = (s if depth == 7 else (s % (depth + 3))) + 1
            head += pack.pack([2, node, parent, code, 10 + depth, depth == 0])
            parent = node
        leaves.append(parent)
    reader = StreamReader()
    reader.feed(bytes(head))
    tree = CallTree(reader)
    base = rss_bytes()
    chunk = bytearray()
    for i in range(n):
        chunk += pack.pack([4, 1, 1, 0x10000000 + 64 * i, 32 + (i % 64), leaves[i % stacks], 0])
        if len(chunk) > 1 << 20:
            reader.feed(bytes(chunk))
            chunk.clear()
    reader.feed(bytes(chunk))
    after_reader = rss_bytes()
    tree.rebuild()
    after_model = rss_bytes()
    per_m = (after_model - base) / millions / 1e6
    print(f"memory: {n:,} live allocations over {stacks:,} stacks: reader +"
          f"{(after_reader - base) / 1e6:.1f} MB, model +{(after_model - after_reader) / 1e6:.1f}"
          f" MB ({tree.node_count():,} nodes) -> {per_m:.1f} MB per million live allocations")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("keys", "live", "memory"))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--keys-script", type=Path, help="trace this program instead (baseline)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_churn(Path(tmp))
        if args.only in (None, "memory"):
            bench_memory(1.0, 2000)
            bench_memory(2.0, 2000)
        if args.only in (None, "keys"):
            bench_keys(lib, args.seconds, args.keys_script)
        if args.only in (None, "live"):
            bench_live_vs_run(lib, args.rounds, args.scale)


if __name__ == "__main__":
    main()
