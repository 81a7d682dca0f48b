"""Responsiveness, speed and memory of the live TUI and its model (issues 4 and 8), printed
as figures.

1. Key press -> cursor moved and repainted (p50/p99), and the lateness of a 60 Hz UI timer
   (p50/p99), while `--native` tracing a C malloc/free churn (>= 1M allocations/s) streams
   into the app: the real child runner, pipe, feed thread, model and app (headless driver,
   so the figure is the app's own work, not the terminal's). `--keys-script` traces another
   program instead (e.g. benchmarks/workloads/pandas_merge.py: the import burst).
2. The traced program's run time under `memtrace live --native` (in tmux, a real terminal)
   next to `memtrace run --native -o FILE`, interleaved rounds, medians and ratio.
3. The app's memory per million live allocations (reader + model), from RSS growth, on a
   capture `memtrace run` writes of workloads/live_blocks.py (a million blocks kept live
   over 2,000 distinct Python stacks).
4. New native stacks absorbed per second (depth 100, merged into the tree with provisional
   `lib+0xoffset` names), and stacks moved per second when their names arrive; and a real
   capture's stacks (`--capture`).
5. Live lag: seconds from a record reaching the reader to its bytes in the tree (p50/p99),
   on a real program under `--native` (default: the pandas workload when pandas is
   installed, else numpy's), with the tree's root checked against the header's figures
   after every update, and how long after the program's end the last native name arrives.
6. `view` on a capture: time to the first fully named screen (tmux), cold and warm symbol
   cache, next to `memtrace tree` on the same capture (`--capture`; made from the lag
   workload when not given); and the CPU view's main thread had used by then next to
   `tree`'s (steadier than wall time on a machine shared with other jobs).

    python benchmarks/bench_tui.py            # all
    python benchmarks/bench_tui.py --only keys --seconds 20
    python benchmarks/bench_tui.py --only absorb,lag,view --capture app.mtrace
    python benchmarks/bench_tui.py --smoke --json tui.json   # every part, tiny (CI)
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

from benchlib import (
    HERE,
    REPO,
    Failed,
    Results,
    build_churn,
    parser,
    pct,
    run,
    tmux,
    tmux_new_session,
)

sys.path.insert(0, str(REPO))


def child_env(lib: Path, scale: float) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    env["MT_BENCH_CHURN_LIB"] = str(lib)
    env["MT_BENCH_SCALE"] = str(scale)
    return env


# -- 1. key latency and tick lateness --------------------------------------------------------
def bench_keys(lib: Path, seconds: float, script: Path | None, results: Results) -> None:
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
        # long enough to outlive the app's start, the 2.5 s warm-up and `seconds` of keys
        # (it is stopped then): the smoke run's 3 s of work ended before its keys began once
        # the stream got denser (format 9) and the app stopped slowing the program down
        env=child_env(lib, scale=(seconds + 3) * 3), start_new_session=True)
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
                    if time.perf_counter() - start > 10:
                        raise Failed(f"keys: {direction!r} did not move the cursor in 10 s "
                                     f"({tree.row_count} rows)")
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
    if not ms or not late:
        raise Failed(f"keys: {len(ms)} key presses and {len(late)} timer ticks measured "
                     f"(the traced program ended early? {session.status_text()})")
    results.figure("keys/allocations_per_s", round(rate), "allocs/s", better="higher")
    for name, values in (("repaint", ms), ("handled", hm), ("timer_lateness", late),
                         ("model_update", upd)):
        for q in (50, 99):
            results.figure(f"keys/{name}_p{q}_ms", round(pct(values, q), 3), "ms")


# -- 2. live vs run ----------------------------------------------------------------------------
def capture_duration(path: Path) -> float:
    from memtrace_core.reader import read_capture

    r = read_capture(path)
    return r.trailer["end_time"] - r.header["start_time"]


def bench_live_vs_run(lib: Path, rounds: int, scale: float, results: Results) -> None:
    if shutil.which("tmux") is None:
        results.skip("live vs run", "tmux not installed")
        return
    script = HERE / "workloads" / "malloc_free.py"
    env = child_env(lib, scale)
    times: dict[str, list[float]] = {"run": [], "live": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            cap = Path(tmp) / f"run{i}.mtrace"
            subprocess.run([sys.executable, "-m", "memtrace_tui", "run", "--native", "-o",
                            str(cap), "--force", str(script)], env=env, check=True,
                           capture_output=True)
            times["run"].append(capture_duration(cap))
            cap = Path(tmp) / f"live{i}.mtrace"
            name = f"mtbench{os.getpid()}{i}"
            exports = " ".join(f"{k}={v}" for k, v in env.items()
                               if k.startswith(("MT_BENCH", "PYTHONPATH")))
            cmd = (f"env {exports} {sys.executable} -m memtrace_tui live --native -o {cap} "
                   f"--force {script}")
            tmux_new_session(["-s", name, "-x", "140", "-y", "45", cmd])
            deadline = time.monotonic() + 300
            while True:
                screen = tmux("capture-pane", "-p", "-t", name).stdout
                if "exited with status" in screen:
                    break
                if time.monotonic() > deadline:
                    tmux("kill-session", "-t", name)
                    raise Failed(f"live: no exit status on screen after 300 s:\n{screen}")
                time.sleep(0.2)
            tmux("send-keys", "-t", name, "q")
            time.sleep(1.0)
            tmux("kill-session", "-t", name)
            times["live"].append(capture_duration(cap))
    run_m, live_m = statistics.median(times["run"]), statistics.median(times["live"])
    print(f"traced program time, malloc/free churn --native, {rounds} interleaved rounds: "
          f"run -o FILE median {run_m:.2f} s, live median {live_m:.2f} s, "
          f"ratio {live_m / run_m:.3f}   (target <= 1.10)")
    results.figure("live/run_s", round(run_m, 4), "s")
    results.figure("live/live_s", round(live_m, 4), "s")
    results.figure("live/ratio", round(live_m / run_m, 3), "x")


# -- 3. memory per million live allocations ---------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def live_capture(lib: Path, work: Path, millions: float, stacks: int) -> Path:
    """A capture of workloads/live_blocks.py by `memtrace run`: the tracer's own writer."""
    capture = work / f"live{millions:g}.mtrace"
    env = child_env(lib, 1.0)
    env.update(MT_BENCH_LIVE=str(int(millions * 1_000_000)), MT_BENCH_STACKS=str(stacks))
    proc = subprocess.run([sys.executable, "-m", "memtrace_tui", "run", "-o", str(capture),
                           "--force", str(HERE / "workloads" / "live_blocks.py")],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise Failed(f"memtrace run live_blocks.py exited {proc.returncode}: "
                     f"{proc.stderr.strip()[-300:]}")
    return capture


def bench_memory(capture: Path, millions: float, results: Results) -> None:
    from memtrace_core.model.calltree import CallTree
    from memtrace_core.reader import StreamReader, capture_stream

    reader = StreamReader()
    tree = CallTree(reader)
    base = rss_bytes()
    for piece in capture_stream(capture, chunk=1 << 20):
        reader.feed(piece)
    reader.finish()
    after_reader = rss_bytes()
    tree.rebuild()
    after_model = rss_bytes()
    live = reader.heap_allocations
    if live < millions * 1_000_000 or not reader.complete:
        raise Failed(f"memory: the capture holds {live:,} live allocations, not "
                     f"{millions * 1_000_000:,.0f} (complete: {reader.complete})")
    per_m = (after_model - base) / (live / 1e6) / 1e6
    print(f"memory: {live:,} live allocations over {reader.n_stacks:,} stacks: reader +"
          f"{(after_reader - base) / 1e6:.1f} MB, model +{(after_model - after_reader) / 1e6:.1f}"
          f" MB ({tree.node_count():,} nodes) -> {per_m:.1f} MB per million live allocations")
    key = f"memory/{millions:g}M"
    results.figure(f"{key}/reader_MB", round((after_reader - base) / 1e6, 2), "MB")
    results.figure(f"{key}/model_MB", round((after_model - after_reader) / 1e6, 2), "MB")
    results.figure(f"{key}/MB_per_million_live", round(per_m, 2), "MB")
    tree.close()


# -- 4. absorbing new stacks ------------------------------------------------------------------
LIB_BASE, PY_BASE = 0x7F0000000000, 0x7E0000000000
EVAL_IP, START_IP = PY_BASE + 0x5000, PY_BASE + 0x100


class BenchNamer:
    """The namer protocol over synthetic addresses: eval loops and the thread root known at
    once, every other address `libbench.so+0x...` until `name_all()`."""

    def __init__(self) -> None:
        self.waiting: list[int] = []
        self.arrived: dict = {}

    def classify(self, ips):
        from memtrace_core.frames import Frame, FrameKind
        from memtrace_core.symbols.hybrid import A_EVAL, A_PENDING, A_ROOT

        out = []
        for ip in ips:
            if ip == EVAL_IP:
                out.append((A_EVAL, [Frame("_PyEval_EvalFrameDefault", "ceval.c", 1,
                                           FrameKind.NATIVE, "/x/libpython3.11.so")]))
            elif ip == START_IP:
                out.append((A_ROOT, [Frame("start_thread", "", 0, FrameKind.NATIVE,
                                           "/x/libc.so.6")]))
            else:
                self.waiting.append(ip)
                out.append((A_PENDING, [Frame(f"libbench.so+{ip - 1 - LIB_BASE:#x}", "", 0,
                                              FrameKind.UNRESOLVED, "/x/libbench.so")]))
        return out

    def name_all(self) -> None:
        from memtrace_core.frames import Frame, FrameKind

        self.arrived = {ip: [Frame(f"fn_{ip - LIB_BASE:x}", "bench.c", 1, FrameKind.NATIVE,
                                   "/x/libbench.so")] for ip in self.waiting}
        self.waiting = []

    def poll(self):
        out, self.arrived = self.arrived, {}
        return out

    def pending(self) -> int:
        return len(self.waiting)

    def close(self) -> None:
        pass


def synthetic_stacks(n: int, depth: int = 100, seed: int = 1) -> bytes:
    """A stream of n distinct native stacks of `depth` frames, shaped like a real program's:
    each new stack shares 85-99 outer frames with an earlier one (pandas' 16,014 import and
    run stacks average 7 new tree nodes each); two eval loops run two Python frames."""
    import random

    import msgpack

    rng = random.Random(seed)
    pack = msgpack.Packer()
    out = bytearray(b"MEMTRACE")
    out += pack.pack([0, {"format": 1, "pid": 1, "argv": ["bench"], "python": "3.11.7",
                          "native": True, "python_allocators": False, "start_time": 0.0,
                          "attached": False, "executable": "/x/python3"}])
    out += pack.pack([1, 1, "main", "/app/main.py", 1])
    out += pack.pack([1, 2, "work", "/app/work.py", 1])
    out += pack.pack([2, 1, 0, 1, 5, True])
    out += pack.pack([2, 2, 1, 2, 9, True])
    nodes: dict[tuple[int, int], int] = {}

    def intern(ips: list[int]) -> int:
        parent = 0
        for ip in ips:
            node = nodes.get((parent, ip))
            if node is None:
                node = nodes[(parent, ip)] = len(nodes) + 1
                out.extend(pack.pack([3, node, parent, ip]))
            parent = node
        return parent

    def lib_ip() -> int:
        return LIB_BASE + 16 * rng.randrange(1, 20000) + 1

    stacks = [[START_IP, EVAL_IP] + [lib_ip() for _ in range(depth // 2 - 2)] + [EVAL_IP]
              + [lib_ip() for _ in range(depth - depth // 2 - 1)]]
    addr = 0x1000
    last = 0
    for _ in range(n):
        base = stacks[rng.randrange(len(stacks))]
        keep = rng.randrange(depth - 15, depth)
        ips = base[:keep] + [lib_ip() for _ in range(depth - keep)]
        stacks.append(ips)
        delta = addr - last
        last = addr
        out += pack.pack([4, 1, 1, delta, 64, 2, intern(ips)])
        addr += 0x100
    return bytes(out)


def bench_absorb(n: int, capture: Path | None, results: Results) -> None:
    from memtrace_core.model.calltree import CallTree
    from memtrace_core.reader import StreamReader, read_capture

    data = synthetic_stacks(n)
    reader = StreamReader()
    reader.feed(data)
    namer = BenchNamer()
    tree = CallTree(reader, namer, native=True)
    t0 = time.perf_counter()
    tree.update()
    t1 = time.perf_counter()
    nodes = tree.node_count()
    namer.name_all()
    t2 = time.perf_counter()
    tree.update()
    t3 = time.perf_counter()
    assert tree.root.total[0] == reader.total_allocated_bytes
    print(f"absorb: {reader.n_stacks:,} new native stacks of depth 100 merged in "
          f"{t1 - t0:.3f} s -> {reader.n_stacks / (t1 - t0):,.0f} stacks/s ({nodes:,} nodes; "
          "target >= 50,000/s); names arriving for all: "
          f"{tree.core.stacks_moved / (t3 - t2):,.0f} stacks moved/s")
    results.figure("absorb/stacks_per_s", round(reader.n_stacks / (t1 - t0)), "stacks/s",
                   better="higher")
    results.figure("absorb/moved_per_s", round(tree.core.stacks_moved / (t3 - t2)),
                   "stacks/s", better="higher")
    if capture is not None:
        from memtrace_core.model.build import call_tree

        reader = read_capture(capture)
        with tempfile.TemporaryDirectory() as cold:
            tree = call_tree(reader, names="off", cache_dir=Path(cold))  # all provisional
            t0 = time.perf_counter()
            tree.update()
            dt = time.perf_counter() - t0
            tree.close()
        print(f"absorb: {capture.name}: {reader.n_stacks:,} stacks in {dt:.3f} s -> "
              f"{reader.n_stacks / dt:,.0f} stacks/s ({tree.node_count():,} nodes), "
              "every address classified (symbol tables of libpython and libc read) on the way")
        results.figure("absorb/capture_stacks_per_s", round(reader.n_stacks / dt), "stacks/s",
                       better="higher")


# -- 5. lag of a live run ------------------------------------------------------------------
def bench_lag(script: Path, scale: float, results: Results) -> None:
    from memtrace_core.model.build import call_tree
    from memtrace_core.model.feed import PipeFeed, enlarge_pipe
    from memtrace_core.model.session import Session
    from memtrace_core.reader import StreamReader

    read_fd, write_fd = os.pipe()
    enlarge_pipe(read_fd)
    with tempfile.TemporaryDirectory() as tmp:
        env = child_env(Path(tmp) / "unused", scale)
        env["XDG_CACHE_HOME"] = tmp  # names from a cold cache: the worst case
        proc = subprocess.Popen(
            [sys.executable, "-m", "memtrace_core.tracer.runner", "--fd", str(write_fd),
             "--native", str(script)], pass_fds=[write_fd], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True)
        os.close(write_fd)
        reader = StreamReader()
        tree = call_tree(reader, native=True, cache_dir=Path(tmp) / "memtrace")
        session = Session(reader, tree, live=True)
        checks = {"updates": 0, "mismatches": 0}

        def on_update() -> None:
            with session.lock:
                f = tree.figures
                t = tree.root.total
                checks["updates"] += 1
                if (t[2], t[4], t[0], t[1]) != (f.heap_bytes, f.peak_bytes,
                                                 f.total_allocated_bytes, f.total_allocations):
                    checks["mismatches"] += 1

        feed = PipeFeed(read_fd, session, on_update=on_update)
        t_start = time.monotonic()
        feed.start()
        code = proc.wait()
        t_exit = time.monotonic()
        feed.eof.wait(60)
        t_eof = time.monotonic()
        while tree.pending_names() and time.monotonic() - t_exit < 120:
            time.sleep(0.01)
        t_named = time.monotonic()
        feed.stop()
        feed.join(10)
        tree.close()
    lags = [x * 1000 for x in feed.lag_seconds]
    biggest = max((n for _t, n in feed.updates_done), default=0)
    print(f"lag: {script.name} (exit {code}, {t_exit - t_start:.1f} s, {reader.n_stacks:,} "
          f"stacks): record -> its bytes in the tree p50 {pct(lags, 50):.0f} ms, p99 "
          f"{pct(lags, 99):.0f} ms, max {max(lags, default=0):.0f} ms (target: within 1 s); "
          f"{checks['updates']} updates (largest {biggest:,} stacks), root != header in "
          f"{checks['mismatches']}; stream end {t_eof - t_exit:.2f} s after exit, every "
          f"name in {t_named - t_exit:.2f} s after exit (cold symbol cache)")
    for q in (50, 99):
        results.figure(f"lag/p{q}_ms", round(pct(lags, q), 1), "ms")
    results.figure("lag/root_header_mismatches", checks["mismatches"], "updates")
    results.figure("lag/names_after_exit_s", round(t_named - t_exit, 3), "s")
    if checks["mismatches"]:
        raise Failed(f"lag: the tree's root differed from the header in "
                     f"{checks['mismatches']} updates")


# -- 6. view vs tree -----------------------------------------------------------------------
def bench_view(capture: Path, rounds: int, results: Results) -> None:
    """Wall time to the first fully named screen, and CPU: `tree`'s whole process against
    the CPU view's main thread had spent by then (the work on the critical path; on a
    machine shared with other jobs, wall time mostly measures the wait for a core)."""
    if shutil.which("tmux") is None:
        results.skip("view", "tmux not installed")
        return
    times: dict[str, list[float]] = {}
    for i in range(rounds):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, XDG_CACHE_HOME=cache,
                       PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
            for warmth in ("cold", "warm"):
                before = os.times()
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "memtrace_tui", "tree", str(capture)],
                               env=env, stdout=subprocess.DEVNULL, check=True)
                times.setdefault(f"tree {warmth}", []).append(time.perf_counter() - t0)
                after = os.times()
                times.setdefault(f"tree {warmth} cpu", []).append(
                    after.children_user + after.children_system
                    - before.children_user - before.children_system)
            shutil.rmtree(Path(cache) / "memtrace", ignore_errors=True)  # cold again
            for warmth in ("cold", "warm"):
                wall, main_cpu, process_cpu = _view_time(
                    capture, env, f"mtview{os.getpid()}-{i}-{warmth}")
                times.setdefault(f"view {warmth}", []).append(wall)
                times.setdefault(f"view {warmth} main thread cpu", []).append(main_cpu)
                times.setdefault(f"view {warmth} process cpu", []).append(process_cpu)
    for name, values in times.items():
        print(f"view: {name}: median {statistics.median(values):.2f} s over {len(values)}")
        results.figure(f"view/{name.replace(' ', '_')}_s", round(statistics.median(values), 3),
                       "s")
    for warmth in ("cold", "warm"):
        gap = (statistics.median(times[f"view {warmth}"])
               - statistics.median(times[f"tree {warmth}"]))
        print(f"view: first fully named screen {warmth}: `memtrace tree` + {gap:.2f} s "
              "(target <= + 0.5 s)")
        results.figure(f"view/{warmth}_minus_tree_s", round(gap, 3), "s")
        cpu_gap = (statistics.median(times[f"view {warmth} main thread cpu"])
                   - statistics.median(times[f"tree {warmth} cpu"]))
        print(f"view: CPU on the critical path {warmth}: view's main thread - `memtrace tree` "
              f"= {cpu_gap:+.2f} s")
        results.figure(f"view/{warmth}_main_cpu_minus_tree_cpu_s", round(cpu_gap, 3), "s")


def _cpu_seconds(stat_path: str) -> float:
    """utime + stime of a /proc stat file (a process, or one of its threads)."""
    try:
        with open(stat_path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _view_time(capture: Path, env: dict[str, str], name: str,
               python: str = sys.executable) -> tuple[float, float, float]:
    """Seconds from starting `memtrace view` in tmux to a screen with frames on it and no
    name pending; and the CPU seconds its main thread and its whole process (every
    thread, not the symbolizer worker) had used then."""
    exports = " ".join(f"{k}={v}" for k, v in env.items()
                       if k in ("XDG_CACHE_HOME", "PYTHONPATH"))
    cmd = f"exec env -u COLUMNS -u LINES {exports} {python} -m memtrace_tui view {capture}"
    t0 = time.perf_counter()
    tmux_new_session(["-s", name, "-x", "140", "-y", "45", cmd])
    pid = tmux("display-message", "-p", "-t", name, "#{pane_pid}").stdout.strip()
    try:
        while time.perf_counter() - t0 < 120:
            screen = tmux("capture-pane", "-p", "-t", name).stdout
            lines = screen.splitlines()
            rows = [line for line in lines[1:] if "[py] Python" not in line]  # not the legend
            if (lines and "pending" not in lines[0] and any("[py]" in r for r in rows)
                    and not any("[?]" in r for r in rows)):
                wall = time.perf_counter() - t0
                return (wall, _cpu_seconds(f"/proc/{pid}/task/{pid}/stat"),
                        _cpu_seconds(f"/proc/{pid}/stat"))
            time.sleep(0.02)
        return float("nan"), float("nan"), float("nan")
    finally:
        tmux("send-keys", "-t", name, "q")
        time.sleep(0.3)
        tmux("kill-session", "-t", name)


def lag_script() -> Path:
    """The pandas workload when pandas is installed, else numpy's."""
    import importlib.util

    name = "pandas_merge" if importlib.util.find_spec("pandas") else "numpy_work"
    return HERE / "workloads" / f"{name}.py"


def make_capture(script: Path, work: Path, scale: float) -> Path:
    out = work / f"{script.stem}.mtrace"
    env = child_env(work / "unused", scale)
    subprocess.run([sys.executable, "-m", "memtrace_tui", "run", "--native", "--no-names",
                    "-f", "-o", str(out), str(script)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


# -- 7. churn: repaint gaps, root = header, `d` with 300 expanded children ---------------------
OVERTIME = 20.0  # seconds the churn may go on past its time when no repaint gap was seen yet


class WaitTimedLock:
    """The session's lock, recording how long the UI thread waited for it each time. A model
    step holds the GIL as well as the lock, so a long step shows up in the feed thread's
    step durations more than here (the UI thread only asks for the lock once it runs)."""

    def __init__(self, lock, waits: list[float]) -> None:
        import threading

        self._lock = lock
        self._ui = threading.main_thread()
        self.waits = waits

    def __enter__(self):
        import threading

        t0 = time.perf_counter()
        self._lock.acquire()
        if threading.current_thread() is self._ui:
            self.waits.append(time.perf_counter() - t0)
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


def bench_churn(seconds: float, results: Results) -> None:
    from textual import events

    from memtrace_core.model.build import call_tree
    from memtrace_core.model.feed import enlarge_pipe
    from memtrace_core.model.metrics import LIVE_BYTES
    from memtrace_core.model.session import Session
    from memtrace_core.reader import StreamReader
    from memtrace_tui.app import MemtraceApp
    from memtrace_tui.live_controller import LiveController

    warmup = 3.0
    read_fd, write_fd = os.pipe()
    enlarge_pipe(read_fd)
    proc = subprocess.Popen(
        [sys.executable, "-m", "memtrace_core.tracer.runner", "--fd", str(write_fd),
         "--native", str(HERE / "workloads" / "churn_tree.py"),
         str(seconds + warmup + 1 + OVERTIME)],
        pass_fds=[write_fd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env=child_env(Path(os.devnull), 1.0),
        start_new_session=True)
    os.close(write_fd)
    reader = StreamReader()
    tree = call_tree(reader, native=True)
    session = Session(reader, tree, live=True)
    lock_waits: list[float] = []
    session.lock = WaitTimedLock(session.lock, lock_waits)
    controller = LiveController(proc, read_fd, session, log_path=None)
    repaints: list[float] = []
    costs: list[float] = []  # seconds of UI thread per repaint (model read + rows formatted)
    mismatches: list[tuple[int, int]] = []

    class ChurnApp(MemtraceApp):
        def __init__(self) -> None:
            super().__init__(session, controller)
            self.displayed = asyncio.Event()

        def post_display_hook(self) -> None:
            self.displayed.set()

    async def drive() -> tuple[list[float], int, int]:
        app = ChurnApp()
        latencies: list[float] = []
        async with app.run_test(size=(120, 40)) as pilot:
            main = app.main
            repaint = main.refresh_all

            def timed() -> None:
                with session.lock:
                    t0 = time.perf_counter()
                    repaint()
                    costs.append(time.perf_counter() - t0)
                    repaints.append(time.monotonic())
                    shown = main.header_bar.summary.heap_bytes
                    if shown != tree.root.total[LIVE_BYTES]:
                        mismatches.append((shown, tree.root.total[LIVE_BYTES]))

            main.refresh_all = timed
            await asyncio.sleep(warmup)  # the 300 functions appear
            view = main.tree_view
            with session.lock:  # open the node whose children are the 300 functions
                wide = max(tree.walk(), key=lambda n: len(tree.children(n)))
                children = len(tree.children(wide))
                view.select(wide)
                view.expanded[wide.id] = wide
                view.rebuild()
            await pilot.pause(0.2)
            repaints.clear()
            costs.clear()
            lock_waits.clear()
            feed = controller.feed
            if feed is not None:
                feed.update_seconds.clear()
            deadline = time.monotonic() + seconds
            # on a loaded machine a short run can end before two repaints: go on (up to
            # OVERTIME) until there is a gap to measure
            while proc.poll() is None and (time.monotonic() < deadline or (
                    len(repaints) < 2 and time.monotonic() < deadline + OVERTIME)):
                shown = main.detail.display
                app.displayed.clear()
                start = time.perf_counter()
                app._driver.send_message(events.Key("d", "d"))
                while main.detail.display == shown:
                    if time.perf_counter() - start > 10:
                        raise Failed("churn: `d` did not toggle the detail pane in 10 s")
                    await asyncio.sleep(0.0005)
                app.displayed.clear()
                await app.displayed.wait()
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(0.1)
            rows = view.row_count
            controller.stop_program()
        return latencies, children, rows

    try:
        latencies, children, rows = asyncio.run(drive())
    finally:
        if proc.poll() is None:
            proc.kill()
        tree.close()
    ms = [x * 1000 for x in latencies]
    gaps = [(b - a) * 1000 for a, b in zip(repaints, repaints[1:], strict=False)]
    print(f"churn: {reader.total_allocations:,} allocations, heap {reader.heap_bytes / 2**20:.1f}"
          f" MiB; node of {children} children expanded ({rows} rows)")
    print(f"churn: repaint gaps n={len(gaps)}  p50 {pct(gaps, 50):.0f} ms  p99 {pct(gaps, 99):.0f}"
          f" ms  max {max(gaps, default=float('nan')):.0f} ms   (target max <= 500 ms)")
    cost = [x * 1000 for x in costs]
    print(f"churn: repaint cost (UI thread, model read + visible rows) p50 {pct(cost, 50):.1f} ms"
          f"  p99 {pct(cost, 99):.1f} ms")
    print(f"churn: root != header at {len(mismatches)} of {len(repaints)} repaints (target 0)")
    waits = [x * 1000 for x in lock_waits]
    holds = [x * 1000 for x in controller.feed.update_seconds] if controller.feed else []
    print(f"churn: UI thread waits for the session lock n={len(waits)}  p50 {pct(waits, 50):.2f} ms"
          f"  p99 {pct(waits, 99):.1f} ms  max {max(waits, default=float('nan')):.1f} ms; "
          f"feed thread's model steps (lock held) p50 {pct(holds, 50):.1f} ms  p99 "
          f"{pct(holds, 99):.1f} ms  max {max(holds, default=float('nan')):.1f} ms   "
          "(target: no input blocked over 100 ms)")
    print(f"churn: `d` key press -> repaint n={len(ms)}  p50 {pct(ms, 50):.1f} ms  "
          f"p99 {pct(ms, 99):.1f} ms  max {max(ms, default=float('nan')):.1f} ms   "
          f"(target p99 <= 100 ms)")
    if not ms or not gaps:
        raise Failed(f"churn: {len(ms)} key presses and {len(gaps)} repaint gaps measured")
    if mismatches:
        raise Failed(f"churn: the root differed from the header: {mismatches[:3]}")
    results.figure("churn/children_expanded", children, "nodes", better="higher")
    results.figure("churn/root_header_mismatches", len(mismatches), "repaints")
    for name, values in (("repaint_gap", gaps), ("repaint_cost", cost), ("detail_key", ms),
                         ("lock_wait", waits), ("model_step", holds)):
        for q in (50, 99):
            results.figure(f"churn/{name}_p{q}_ms", round(pct(values, q), 3), "ms")
    results.figure("churn/repaint_gap_max_ms", round(max(gaps), 3), "ms")
    results.figure("churn/lock_wait_max_ms", round(max(waits, default=0.0), 3), "ms")


def measure(args: argparse.Namespace, results: Results) -> None:
    only = set(args.only.split(",")) if args.only else None

    def wanted(name: str) -> bool:
        return only is None or name in only

    with tempfile.TemporaryDirectory() as tmp:
        lib = build_churn(Path(tmp))
        if wanted("memory"):
            for millions in args.memory_millions:  # one process: the second shows growth
                capture = live_capture(lib, Path(tmp), millions, 2000)
                bench_memory(capture, millions, results)
        script = args.lag_script or lag_script()
        capture = args.capture
        if capture is None and (wanted("absorb") or wanted("view")):
            capture = make_capture(script, Path(tmp), args.scale)
        if wanted("absorb"):
            bench_absorb(args.stacks, capture, results)
        if wanted("lag"):
            bench_lag(script, args.scale, results)
        if wanted("view"):
            bench_view(capture, args.rounds, results)
        if wanted("keys"):
            bench_keys(lib, args.seconds, args.keys_script, results)
        if wanted("churn"):
            bench_churn(args.seconds, results)
        if wanted("live"):
            bench_live_vs_run(lib, args.rounds, args.scale, results)


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--only", help="comma-separated: keys,live,memory,absorb,lag,view,churn")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--keys-script", type=Path, help="trace this program instead (baseline)")
    ap.add_argument("--stacks", type=int, default=50_000, help="absorb: synthetic stacks")
    ap.add_argument("--capture", type=Path, help="absorb and view: a real --native capture")
    ap.add_argument("--lag-script", type=Path, help="lag: the program to trace")
    args = ap.parse_args()
    args.memory_millions = [1.0, 2.0]
    if args.smoke:
        args.seconds, args.rounds, args.scale, args.memory_millions = 1.0, 1, 0.02, [0.02]
        args.stacks = 2000
    return run("bench_tui", measure, args)


if __name__ == "__main__":
    sys.exit(main())
