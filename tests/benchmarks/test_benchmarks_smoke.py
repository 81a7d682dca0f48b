"""Benchmarks never rot: every script in benchmarks/ runs with --smoke (tiny scale, one
round, every measured path) and writes its figures with --json; a broken path fails here."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCH.glob("bench_*.py"))
HAVE_MEMRAY = importlib.util.find_spec("memray") is not None
HAVE = {name: importlib.util.find_spec(name) is not None  # not in the bench extra
        for name in ("pandas", "torch")}



def bench_module(name: str):
    """A benchmark script as a module, loaded from its file with its sibling `benchlib` (the
    scripts import it as a top-level module; the tests' import path stays as it is)."""
    for module in ("benchlib", name):
        if module not in sys.modules:
            spec = importlib.util.spec_from_file_location(module, BENCH / f"{module}.py")
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[module] = loaded
            spec.loader.exec_module(loaded)
    return sys.modules[name]


def required_figures(script: str) -> list[str]:
    """Figures (fnmatch patterns) whose presence shows that each measured path ran."""
    if script == "bench_run":
        bench_run = bench_module("bench_run")

        modes = [m for m in bench_run.MODES if HAVE_MEMRAY or not m.startswith("memray")]
        workloads = [w for w in bench_run.WORKLOADS
                     if w not in bench_run.OPTIONAL or HAVE[bench_run.OPTIONAL[w]]]
        # the empty program allocates nothing once started: no bytes per allocation; a
        # sampled capture of a tiny run may hold no allocation at all: its size counts
        return [f"{w}/{m}/{f}" for w in workloads for m in modes
                for f in (("seconds",) if m == "untraced" else
                          ("ratio", "capture_bytes") if "-sample" in m else
                          ("ratio",) if w == "empty" else ("ratio", "bytes_per_alloc"))]
    if script == "bench_reader":
        bench_reader = bench_module("bench_reader")

        return [f"{c}/{way}/Mrecords_per_s" for c in bench_reader.CAPTURES
                for way in ("memory", "chunks", "file", "zfile", "msgpack_decode_only")]
    if script == "bench_report":
        bench_report = bench_module("bench_report")

        return ["numpy_work/table_cold_s", "numpy_work/load_profile_s"] + [
            f"numpy_work/{label.replace(' ', '_')}/warm_s" for label in bench_report.REPORTS]
    if script == "bench_symbols":
        tools = [f"{t}_s" for t in ("addr2line", "eu-addr2line") if shutil.which(t)]
        return [*tools, "cold_process_s", "cold_cu_p90_ms", "warm_address_p99_ms",
                "persistent_cache_s", "worker_cold_s", "pyelftools_only_s_per_address"]
    if script == "bench_attach":
        bench_attach = bench_module("bench_attach")

        held = [f"first_data/{s}/memtrace/held_median_ms" for s in bench_attach.STATE_TARGETS]
        gdb = ["first_data/time.sleep/memtrace-gdb/median_s"] if shutil.which("gdb") else []
        return [*held, *gdb, "slowdown/pure_python/attach/ratio",
                "slowdown/pure_python/attach-native/ratio"]
    if script == "bench_leak":
        return ["timeline/records", "timeline/read_capture_s", "timeline/instants",
                "timeline/scrub_median_s", "growth/with/stacks_per_s",
                "growth/without/stacks_per_s"]
    if script == "bench_tui":
        return ["keys/repaint_p99_ms", "keys/timer_lateness_p99_ms",
                "memory/*/MB_per_million_live"] + (
            ["live/ratio"] if shutil.which("tmux") else [])
    raise AssertionError(f"{script}: a new benchmark needs its required figures listed here")


def git_head() -> str | None:
    if shutil.which("git") is None:
        return None
    proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


@pytest.mark.timeout(240)
@pytest.mark.parametrize("script", SCRIPTS)
def test_smoke_run_writes_figures(script: str, tmp_path: Path) -> None:
    out = tmp_path / f"{script}.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{script}.py"), "--smoke", "--json", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=230,
    )
    assert proc.returncode == 0, (
        f"{script} --smoke exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-3000:]}")
    assert f"{script} --smoke" in proc.stdout  # it says its figures are not measurements
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == script and doc["smoke"] is True
    assert doc["failures"] == []
    assert doc["python"]["version"] == platform.python_version()
    assert doc["machine"]["cpu"] and doc["machine"]["cores"] == os.cpu_count()
    head = git_head()
    if head is not None:
        assert doc["commit"]["sha"] == head
    figures = doc["figures"]
    required = {pattern: fnmatch.filter(figures, pattern) for pattern in required_figures(script)}
    missing = [pattern for pattern, found in required.items() if not found]
    assert not missing, f"{script}: figures missing: {missing}\n{proc.stdout[-3000:]}"
    for name, fig in figures.items():
        value = fig["value"]
        assert isinstance(value, (int, float)) and math.isfinite(value), (name, fig)
    if script == "bench_run":  # memtrace's own set-up (reading, compiling) is never recorded
        empty = {n: f["value"] for n, f in figures.items()
                 if n.startswith("empty/memtrace") and n.endswith("/allocations")}
        assert empty and set(empty.values()) == {0}, empty
        assert fig["unit"] and fig["better"] in ("lower", "higher", "none"), (name, fig)
    for name in (name for found in required.values() for name in found):
        if "ratio" in name or name.endswith(("_s", "_ms", "per_s", "_live")):
            assert figures[name]["value"] > 0, (name, figures[name])
