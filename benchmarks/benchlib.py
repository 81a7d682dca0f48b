"""What every benchmark shares: the `--smoke` and `--json FILE` options, the machine and
commit its figures came from, loud failures, and the helpers several scripts need.

A script builds its parser with `parser(__doc__)`, then hands its work to `run`:

    def measure(args, results):
        results.figure("pure_python/memtrace/ratio", 1.13, "x")    # lower is better
        results.figure("memory/Mrecords_per_s", 31.0, "Mrecords/s", better="higher")
        results.skip("memray", "not importable")    # one line, not a failure
        results.fail("memtrace run exited 1: ...")  # printed at once; exit status 1

    sys.exit(run("bench_x", measure, parser(__doc__).parse_args()))

`--smoke` means tiny inputs and one round: every code path the script measures runs in
seconds, and any breakage exits non-zero (CI runs every script so, tests/benchmarks/). Its
figures prove the code runs; they are not measurements. `--json FILE` writes the figures
with the machine, the Python and the commit; `compare.py A.json B.json` prints the ratios.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKLOADS = HERE / "workloads"
FORMAT = 1  # of the JSON files; compare.py reads this version
BETTER = ("lower", "higher", "none")


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    text = (doc or "").strip()
    ap = argparse.ArgumentParser(
        description=text.split("\n\n")[0],
        epilog="\n\n".join(text.split("\n\n")[1:]) or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--smoke", action="store_true",
                    help="tiny scale, one round: check that every measured path runs (CI)")
    ap.add_argument("--json", type=Path, metavar="FILE",
                    help="also write the figures, machine, Python and commit as JSON")
    return ap


class Failed(Exception):
    """A benchmark step that cannot go on; run() reports it and exits 1."""


class Results:
    """The figures of one benchmark run, and what failed or was skipped."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name = name
        self.args = args
        self.figures: dict[str, dict[str, Any]] = {}
        self.failures: list[str] = []
        self.skipped: list[str] = []
        self.started = time.time()
        # where the figures came from, as the run starts: a commit made or a load that
        # changed while it ran must not be recorded as the measured state
        self.commit = commit()
        self.machine = machine()

    @property
    def smoke(self) -> bool:
        return bool(getattr(self.args, "smoke", False))

    def figure(self, key: str, value: float | int | None, unit: str,
               better: str = "lower") -> None:
        """Record one figure; `better` says which way is an improvement ("none": neither)."""
        if better not in BETTER:
            raise ValueError(f"better must be one of {BETTER}, not {better!r}")
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return  # nothing measured: absent, not a number that compares as anything
        if key in self.figures:
            raise ValueError(f"figure {key!r} recorded twice")
        self.figures[key] = {"value": value, "unit": unit, "better": better}

    def fail(self, message: str) -> None:
        """A measured path broke: say so now, and make the run exit 1."""
        self.failures.append(message)
        print(f"FAILED: {message}", file=sys.stderr, flush=True)

    def skip(self, what: str, why: str) -> None:
        """Something optional is not measured (a tool not installed): one line, not a failure."""
        line = f"{what}: skipped ({why})"
        self.skipped.append(line)
        print(line, flush=True)

    def document(self) -> dict[str, Any]:
        """Everything the JSON file holds."""
        return {
            "format": FORMAT,
            "benchmark": self.name,
            "smoke": self.smoke,
            "argv": sys.argv[1:],
            "started": datetime.datetime.fromtimestamp(self.started, datetime.UTC)
            .isoformat(timespec="seconds"),
            "seconds": round(time.time() - self.started, 3),
            "commit": self.commit,
            "machine": self.machine,
            "python": python_info(),
            "versions": versions(),
            "figures": self.figures,
            "failures": self.failures,
            "skipped": self.skipped,
        }

    def finish(self) -> int:
        """Write the JSON file if asked; the exit status (1 when anything failed)."""
        if not self.figures and not self.failures:
            self.fail("no figures: nothing was measured")
        if self.args.json is not None:
            self.args.json.write_text(json.dumps(self.document(), indent=1) + "\n")
            print(f"figures written to {self.args.json}", file=sys.stderr)
        if self.failures:
            print(f"{self.name}: {len(self.failures)} FAILURE(S):", file=sys.stderr)
            for message in self.failures:
                print(f"  {message}", file=sys.stderr)
            return 1
        return 0


def run(name: str, measure: Callable[[argparse.Namespace, Results], None],
        args: argparse.Namespace) -> int:
    """Run MEASURE(args, results); an exception is a failure (traceback shown), and the JSON
    file is written either way. Returns the exit status."""
    results = Results(name, args)
    if results.smoke:
        print(f"{name} --smoke: tiny scale, one round; the figures show that every path "
              "runs, they are not measurements", flush=True)
    try:
        measure(args, results)
    except Failed as exc:
        results.fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - any breakage must end in exit 1, and JSON
        traceback.print_exc()
        results.fail(f"{type(exc).__name__}: {exc}")
    return results.finish()


# -- where the figures came from ---------------------------------------------------------------
def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def commit() -> dict[str, Any]:
    """The checkout measured: commit id, its date, and whether tracked files differ from it."""
    sha = _git("rev-parse", "HEAD")
    if sha is None:
        return {"sha": None, "note": "not a git checkout (or git is missing)"}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "date": _git("show", "-s", "--format=%cI", "HEAD"),
            "subject": _git("show", "-s", "--format=%s", "HEAD"), "dirty": bool(status)}


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU model and cores, memory, kernel, and how busy the machine was at the start."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "arch": platform.machine(),
        "system": platform.platform(),
        "hostname": platform.node(),
    }
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    if hasattr(os, "getloadavg"):
        info["load_1min"] = round(os.getloadavg()[0], 2)
    return info


def python_info() -> dict[str, Any]:
    return {"version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "build": " ".join(platform.python_build()), "executable": sys.executable}


def versions() -> dict[str, str | None]:
    """Versions of memtrace and of the tools and libraries the benchmarks compare or run."""
    out: dict[str, str | None] = {}
    for dist in ("memtrace", "memray", "numpy", "textual", "pyelftools", "zstandard"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


# -- helpers several scripts share -------------------------------------------------------------
def child_env(**extra: str) -> dict[str, str]:
    """This environment with the checkout importable first (as `python -m memtrace_tui`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def memray_available(results: Results) -> bool:
    """True when memray can be compared; otherwise one line saying it is skipped."""
    if importlib.util.find_spec("memray") is not None:
        return True
    results.skip("memray", "not importable; `pip install -e .[bench]` brings it")
    return False


def build_churn(out: Path) -> Path:
    """Compile the malloc/free workload's C library (workloads/churn.c), outside every timing."""
    lib = out / "libchurn.so"
    proc = subprocess.run(["gcc", "-O2", "-fPIC", "-shared", str(WORKLOADS / "churn.c"),
                           "-o", str(lib)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise Failed(f"gcc could not build churn.c: {proc.stderr.strip()[-300:]}")
    return lib


def tmux(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `tmux ARGS` on this benchmark's own tmux server (a socket in a private directory,
    removed at exit), so a user's tmux or a test's sessions never share it. The server stays
    up between sessions (`exit-empty off`): a session started just after the previous one
    ended could otherwise land on a server that was exiting ("server exited unexpectedly")."""
    global _TMUX_DIR
    if _TMUX_DIR is None:
        _TMUX_DIR = tempfile.mkdtemp(prefix="memtrace-bench-tmux-")
        atexit.register(_tmux_cleanup)
        tmux("-f", "/dev/null", "start-server", ";", "set-option", "-g", "exit-empty", "off",
             check=True)
    done = subprocess.run(["tmux", "-S", os.path.join(_TMUX_DIR, "socket"), *args],
                          capture_output=True, text=True)
    if check and done.returncode != 0:
        raise Failed(f"tmux {args[0]} failed: {done.stderr.strip() or done.returncode}")
    return done


_TMUX_DIR: str | None = None


def _tmux_cleanup() -> None:
    if _TMUX_DIR is not None:
        tmux("kill-server")
        shutil.rmtree(_TMUX_DIR, ignore_errors=True)


def tmux_new_session(args: list[str]) -> None:
    """`tmux new-session -d ARGS` on the benchmark's own server."""
    tmux("new-session", "-d", *args, check=True)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of VALUES; nan when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]
