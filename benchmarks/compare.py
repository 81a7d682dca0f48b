"""Compare two benchmark JSON files (`bench_*.py --json FILE`): every figure both hold, side
by side, with the ratio B/A and whether B is better or worse than A.

    python benchmarks/compare.py before.json after.json
    python benchmarks/compare.py before.json after.json --threshold 10 --only malloc_free
    python benchmarks/compare.py base.json new.json --fail-worse 20   # exit 1 beyond +20%

A figure is "better" or "worse" when it moved more than --threshold percent (default 5) in
the direction its benchmark marked as better; figures without a direction (counts, sizes of
inputs) show their ratio only. The header says which commit, machine and Python each file
came from, and warns when the two were not measured alike (other machine, smoke run, other
options): then the ratios compare those as much as the code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

FORMAT = 1


def die(message: str) -> None:
    """Bad input: one line on stderr, exit status 2 (1 means "a figure got worse")."""
    print(f"compare: {message}", file=sys.stderr)
    raise SystemExit(2)


def load(path: Path) -> dict[str, Any]:
    """A benchmark JSON file, or a one-line error."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        die(f"{path}: no such file")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        die(f"{path}: not a benchmark JSON file ({exc})")
    if not isinstance(doc, dict) or not isinstance(doc.get("figures"), dict):
        die(f"{path}: not a benchmark JSON file (no figures)")
    if doc.get("format") != FORMAT:
        die(f"{path}: JSON format {doc.get('format')!r}; this compare.py reads format {FORMAT}")
    return doc


def describe(doc: dict[str, Any]) -> str:
    """One line: benchmark, commit, date, machine, Python."""
    commit = doc.get("commit") or {}
    sha = (commit.get("sha") or "no commit")[:10] + (" +changes" if commit.get("dirty") else "")
    machine = doc.get("machine") or {}
    python = (doc.get("python") or {}).get("version", "?")
    load = f", load {machine['load_1min']}" if "load_1min" in machine else ""
    smoke = " SMOKE" if doc.get("smoke") else ""
    return (f"{doc.get('benchmark', '?')}{smoke} at {sha} ({doc.get('started', '?')}) on "
            f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores{load}; "
            f"Python {python}")


def warnings(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Why the ratios may not be about the code alone."""
    out = []
    if a.get("benchmark") != b.get("benchmark"):
        out.append(f"different benchmarks: {a.get('benchmark')} and {b.get('benchmark')}")
    for key in ("cpu", "cores", "hostname"):
        if (a.get("machine") or {}).get(key) != (b.get("machine") or {}).get(key):
            out.append(f"different machines ({key}): the ratios compare machines too")
            break
    if (a.get("python") or {}).get("version") != (b.get("python") or {}).get("version"):
        out.append("different Python versions")
    if a.get("smoke") or b.get("smoke"):
        out.append("a smoke run: its figures show that the code runs, they are not measurements")
    if a.get("argv") != b.get("argv"):
        out.append(f"different options: {a.get('argv')} and {b.get('argv')}")
    for name, doc in (("A", a), ("B", b)):
        if doc.get("failures"):
            out.append(f"{name} had {len(doc['failures'])} failure(s): its figures are partial")
    return out


def number(value: float, unit: str) -> str:
    text = f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"
    return f"{text} {unit}" if unit else text


def verdict(ratio: float, better: str, threshold: float) -> str:
    """better / worse / same, for a ratio B/A and the direction that counts as better."""
    if better == "none" or ratio != ratio:
        return ""
    if abs(ratio - 1) * 100 <= threshold:
        return "same"
    improved = ratio < 1 if better == "lower" else ratio > 1
    return "better" if improved else "WORSE"


def compare(a: dict[str, Any], b: dict[str, Any], threshold: float, only: str | None,
            fail_worse: float | None) -> int:
    print(f"A: {describe(a)}")
    print(f"B: {describe(b)}")
    for line in warnings(a, b):
        print(f"note: {line}")
    fa, fb = a["figures"], b["figures"]
    keys = [k for k in fa if k in fb and (only is None or only in k)]
    width = max([len(k) for k in keys] + [6])
    print(f"\n{'figure':<{width}}  {'A':>16}  {'B':>16}  {'B/A':>7}")
    worst = 0.0
    counts = {"better": 0, "WORSE": 0, "same": 0}
    for key in keys:
        x, y = fa[key], fb[key]
        va, vb = x["value"], y["value"]
        ratio = vb / va if va else (1.0 if vb == va else float("inf"))
        better = y.get("better", x.get("better", "none"))
        mark = verdict(ratio, better, threshold)
        if mark:
            counts[mark] += 1
        if mark == "WORSE":
            worst = max(worst, (ratio - 1 if better == "lower" else 1 / ratio - 1) * 100)
        ratio_text = f"{ratio:7.3f}" if ratio != float("inf") else "    inf"
        print(f"{key:<{width}}  {number(va, x.get('unit', '')):>16}  "
              f"{number(vb, y.get('unit', '')):>16}  {ratio_text}  {mark}")
    for name, mine, other in (("A", fa, fb), ("B", fb, fa)):
        missing = [k for k in mine if k not in other and (only is None or only in k)]
        if missing:
            print(f"\nonly in {name}: {', '.join(missing)}")
    print(f"\n{len(keys)} figures: {counts['better']} better, {counts['WORSE']} worse, "
          f"{counts['same']} within {threshold:g}%")
    if fail_worse is not None and worst > fail_worse:
        print(f"a figure is worse by {worst:.0f}% (> {fail_worse:g}%)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("a", type=Path, metavar="A.json", help="the baseline")
    ap.add_argument("b", type=Path, metavar="B.json", help="the run to compare with it")
    ap.add_argument("--threshold", type=float, default=5.0,
                    help="percent a figure must move to count as better or worse (default 5)")
    ap.add_argument("--only", metavar="TEXT", help="only figures whose name contains TEXT")
    ap.add_argument("--fail-worse", type=float, metavar="PERCENT",
                    help="exit 1 when a figure is worse by more than PERCENT")
    args = ap.parse_args(argv)
    return compare(load(args.a), load(args.b), args.threshold, args.only, args.fail_worse)


if __name__ == "__main__":
    sys.exit(main())
