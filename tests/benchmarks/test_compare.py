"""benchlib's loud failures and JSON, and compare.py's ratios, on real benchmark processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"

TOY = '''
import sys
sys.path.insert(0, {bench!r})
from benchlib import Failed, parser, run

def measure(args, results):
    results.figure("work/seconds", args.seconds, "s")
    results.figure("work/rate", 100 / args.seconds, "items/s", better="higher")
    results.figure("work/items", 100, "items", better="none")
    if args.broken == "raise":
        raise KeyError("boom")
    if args.broken == "fail":
        raise Failed("the measured path broke")

ap = parser(__doc__)
ap.add_argument("--seconds", type=float, default=2.0)
ap.add_argument("--broken", default="")
sys.exit(run("bench_toy", measure, ap.parse_args()))
'''


def toy(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    script = tmp_path / "bench_toy.py"
    script.write_text(TOY.format(bench=str(BENCH)))
    out = tmp_path / f"{name}.json"
    proc = subprocess.run([sys.executable, str(script), "--json", str(out), *args],
                          capture_output=True, text=True, cwd=tmp_path)
    return proc, json.loads(out.read_text())


def compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / "compare.py"), *args],
                          capture_output=True, text=True, env=dict(os.environ))


def test_a_broken_path_exits_1_loudly_and_still_writes_its_figures(tmp_path: Path) -> None:
    for broken, message in (("raise", "KeyError: 'boom'"), ("fail", "the measured path broke")):
        proc, doc = toy(tmp_path, broken, "--broken", broken)
        assert proc.returncode == 1
        assert f"FAILED: {message}" in proc.stderr
        assert doc["failures"] == [message]
        assert doc["figures"]["work/seconds"]["value"] == 2.0


def test_compare_prints_ratios_and_which_way_they_go(tmp_path: Path) -> None:
    proc, a = toy(tmp_path, "a", "--seconds", "2")
    assert proc.returncode == 0, proc.stderr
    proc, b = toy(tmp_path, "b", "--seconds", "3")
    assert proc.returncode == 0, proc.stderr
    assert a["commit"] == b["commit"] and a["machine"]["cpu"] == b["machine"]["cpu"]
    got = compare(str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert got.returncode == 0, got.stderr
    rows = {line.split()[0]: line.split() for line in got.stdout.splitlines()
            if line.startswith("work/")}
    assert rows["work/seconds"][-2:] == ["1.500", "WORSE"]  # 3 s against 2 s
    assert rows["work/rate"][-2:] == ["0.667", "WORSE"]  # fewer items a second
    assert rows["work/items"][-1] == "1.000"  # no direction: the ratio only
    assert "note: different options" in got.stdout
    assert "3 figures: 0 better, 2 worse, 0 within 5%" in got.stdout
    back = compare(str(tmp_path / "b.json"), str(tmp_path / "a.json"), "--only", "seconds")
    assert "work/seconds" in back.stdout and "work/rate" not in back.stdout
    row = next(line for line in back.stdout.splitlines() if line.startswith("work/seconds"))
    assert row.split()[-2:] == ["0.667", "better"]
    gate = compare(str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--fail-worse", "40")
    assert gate.returncode == 1 and "worse by 50%" in gate.stderr


def test_compare_rejects_what_is_not_a_benchmark_file(tmp_path: Path) -> None:
    proc, _ = toy(tmp_path, "a")
    assert proc.returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{\"figures\": 3}")
    for path, message in ((tmp_path / "missing.json", "no such file"),
                          (bad, "not a benchmark JSON file")):
        got = compare(str(tmp_path / "a.json"), str(path))
        assert got.returncode == 2
        assert got.stderr.strip() == f"compare: {path}: {message}" + (
            " (no figures)" if path == bad else "")
