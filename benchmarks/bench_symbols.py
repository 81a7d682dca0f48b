"""Symbolization speed: >= 1,000 unique real addresses in libpython (+ libc with its
debug file, + numpy's _multiarray_umath when present), cold process, warm, and from the
persistent cache, against binutils `addr2line -f -i` and `eu-addr2line -f -i -C`.

    python benchmarks/bench_symbols.py                # targets printed beside the figures
    python benchmarks/bench_symbols.py --pyelftools   # + pure-pyelftools decoding (<= 60 s)
    python benchmarks/bench_symbols.py --smoke        # 1/20 of the addresses, one run each

addr2line and eu-addr2line are skipped (one line says so) when not installed.
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from benchlib import REPO, Failed, Results, child_env, parser, pct, run

sys.path.insert(0, str(REPO))

from memtrace_core.symbols.elf import read_build_id  # noqa: E402
from memtrace_core.symbols.symbolizer import _Module  # noqa: E402


def sample(lib: str, n: int, seed: int = 3) -> list[int]:
    syms = [(a, s) for a, s, _ in _Module(lib, None, 0).symtab.syms if s > 4]
    rnd = random.Random(seed)
    out: set[int] = set()
    while len(out) < n and len(out) < sum(s for _, s in syms):
        a, s = rnd.choice(syms)
        out.add(rnd.randrange(a, a + s))
    return sorted(out)


def libraries(fraction: float) -> dict[str, list[int]]:
    """Addresses to name: libpython's, libc's (when its debug file is installed), numpy's."""
    libs: dict[str, list[int]] = {}
    lp = Path(sysconfig.get_config_var("LIBDIR")) / (
        sysconfig.get_config_var("INSTSONAME") or "libpython3.11.so.1.0")
    if not lp.exists():
        raise Failed(f"{lp}: no shared libpython to name addresses in")
    libs[str(lp)] = sample(str(lp), int(1050 * fraction))
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    bid = read_build_id(libc) if Path(libc).exists() else None
    if bid and Path(f"/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug").exists():
        libs[libc] = sample(libc, int(500 * fraction))
    venv = Path(sys.prefix)
    for np in glob.glob(str(venv / "lib/python3*/site-packages/numpy/*/_multiarray_umath*.so")):
        libs[np] = sample(np, int(500 * fraction))
    return libs


CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from memtrace_core.symbols import Symbolizer
from memtrace_core.symbols.elf import read_build_id
spec = json.loads(sys.stdin.read())
cache = spec["cache"]
sym = Symbolizer(cache_dir=Path(cache) if cache else None, persistent=bool(cache))
t_import = time.perf_counter() - t0
res = {"import_s": t_import, "libs": {}}
t_all = time.perf_counter()
for lib, addrs in spec["libs"].items():
    bid = read_build_id(lib)
    per, cold = [], []
    for a in addrs:
        mod = sym._modules.get((lib, bid))
        dw = mod.dwarf if mod is not None else None
        n_before = len(dw._scopes) if dw is not None else -1
        t = time.perf_counter()
        sym.resolve(lib, bid, a)
        dt = time.perf_counter() - t
        mod = sym._modules.get((lib, bid))
        dw = mod.dwarf if mod is not None else None
        if dw is not None and len(dw._scopes) > max(n_before, 0):
            cold.append(dt)
        else:
            per.append(dt)
    warm = []
    if spec["warm"]:
        sym._memo.clear()
        for a in addrs:
            t = time.perf_counter()
            sym.resolve(lib, bid, a)
            warm.append(time.perf_counter() - t)
    res["libs"][lib] = {"cold_cu": cold, "other": per, "warm": warm}
sym.flush()
res["total_s"] = time.perf_counter() - t_all
res["notes"] = sym.notes
print(json.dumps(res))
"""


def child(libs: dict[str, list[int]], cache: str | None, warm: bool) -> tuple[dict, float]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(
        {"libs": libs, "cache": cache, "warm": warm}), capture_output=True, text=True,
        env=child_env())
    if proc.returncode != 0:
        raise Failed(f"the symbolizer process failed:\n{proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout), time.perf_counter() - t


def run_tool(argv: list[str], libs: dict[str, list[int]]) -> float:
    t = time.perf_counter()
    for lib, addrs in libs.items():
        # exit status 1 only says some address had no answer
        subprocess.run([*argv, "-e", lib, *[hex(a) for a in addrs]], capture_output=True)
    return time.perf_counter() - t


def pyelftools_only(lib: str, addrs: list[int], budget_s: float) -> tuple[int, int, float]:
    """The pure-pyelftools way (line program rows and DIEs as Python objects) on the same
    addresses, until the budget runs out: (addresses done, CUs decoded, seconds)."""
    from elftools.elf.elffile import ELFFile

    t = time.perf_counter()
    done = 0
    seen: dict[int, list] = {}
    with open(lib, "rb") as f:
        dw = ELFFile(f).get_dwarf_info()
        aranges = dw.get_aranges()
        for a in addrs:
            off = aranges.cu_offset_at_addr(a) if aranges else None
            if off is not None and off not in seen:
                cu = dw.get_CU_at(off)
                lp = dw.line_program_for_CU(cu)
                seen[off] = [(e.state.address, e.state.file, e.state.line)
                             for e in lp.get_entries() if e.state]
                for die in cu.iter_DIEs():
                    if die.tag == "DW_TAG_inlined_subroutine":
                        die.attributes.get("DW_AT_low_pc")
            done += 1
            if time.perf_counter() - t > budget_s:
                break
    return done, len(seen), time.perf_counter() - t


def measure(args: argparse.Namespace, results: Results) -> None:
    libs = libraries(args.fraction)
    rounds = 1 if args.smoke else 3
    n = sum(len(v) for v in libs.values())
    per_lib = ", ".join(f"{Path(k).name}: {len(v)}" for k, v in libs.items())
    print(f"addresses: {n} unique ({per_lib})")
    results.figure("addresses", n, "addresses", better="none")
    tools = {"addr2line": ["addr2line", "-f", "-i"],
             "eu-addr2line": ["eu-addr2line", "-f", "-i", "-C"]}
    tool_s: dict[str, float] = {}
    for name, argv in tools.items():
        if shutil.which(argv[0]) is None:
            results.skip(name, "not installed (binutils / elfutils)")
            continue
        tool_s[name] = min(run_tool(argv, libs) for _ in range(rounds))
        results.figure(f"{name}_s", round(tool_s[name], 4), "s")
        print(f"{name + ' ' + ' '.join(argv[1:]):<25}{tool_s[name]:7.3f} s")
    colds = []
    for _ in range(rounds):
        res, wall = child(libs, None, warm=True)
        colds.append((res["total_s"], res, wall))
    colds.sort(key=lambda x: x[0])
    total, res, wall = colds[len(colds) // 2]
    cold_cu = [x for v in res["libs"].values() for x in v["cold_cu"]]
    warm = [x for v in res["libs"].values() for x in v["warm"]]
    if not cold_cu or len(warm) != n:
        raise Failed(f"the cold process decoded {len(cold_cu)} compile units and named "
                     f"{len(warm)}/{n} addresses warm: nothing was measured")
    a2l = tool_s.get("addr2line")
    ratio = f"ratio to addr2line {total / a2l:.2f}x, target <= 1x; " if a2l else ""
    print(f"memtrace cold process    {total:7.3f} s  (median of {rounds}; {ratio}process wall "
          f"{wall:.2f} s, import {res['import_s'] * 1000:.0f} ms)")
    print(f"  cold CU decodes: {len(cold_cu)}, p90 {pct(cold_cu, 90) * 1000:.1f} ms "
          f"(target <= 30), worst {max(cold_cu) * 1000:.1f} ms (target <= 250)")
    print(f"  warm address: median {statistics.median(warm) * 1e6:.0f} us, p99 "
          f"{pct(warm, 99) * 1000:.3f} ms (target <= 3)")
    results.figure("cold_process_s", round(total, 4), "s")
    if a2l:
        results.figure("cold_process_ratio_to_addr2line", round(total / a2l, 3), "x")
    results.figure("import_ms", round(res["import_s"] * 1000, 1), "ms")
    results.figure("cold_cu_decodes", len(cold_cu), "CUs", better="none")
    results.figure("cold_cu_p90_ms", round(pct(cold_cu, 90) * 1000, 2), "ms")
    results.figure("cold_cu_worst_ms", round(max(cold_cu) * 1000, 2), "ms")
    results.figure("warm_address_median_us", round(statistics.median(warm) * 1e6, 2), "us")
    results.figure("warm_address_p99_ms", round(pct(warm, 99) * 1000, 4), "ms")
    for lib, v in res["libs"].items():
        print(f"  {Path(lib).name}: {len(v['cold_cu'])} cold CUs, cold-CU worst "
              f"{max(v['cold_cu'] or [0]) * 1000:.1f} ms")
    if res["notes"]:
        print("  notes:", res["notes"][:3])
    with tempfile.TemporaryDirectory() as cache:
        child(libs, cache, warm=False)
        second = sorted(child(libs, cache, warm=False)[0]["total_s"] for _ in range(rounds))
    print(f"second run from persistent cache {second[len(second) // 2]:.3f} s "
          f"(median of {rounds}; target <= 0.2)")
    results.figure("persistent_cache_s", round(second[len(second) // 2], 4), "s")
    from memtrace_core.symbols import SymbolizerWorker

    keys = [(lib, read_build_id(lib), a) for lib, addrs in libs.items() for a in addrs]
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        with SymbolizerWorker(cache_dir=Path(cache)) as w:
            w.submit(keys)
            t_submit = time.perf_counter() - t
            got = w.wait(timeout=120)
            t_all = time.perf_counter() - t
    print(f"worker process, cold: all {len(got)}/{len(keys)} answered in {t_all:.3f} s "
          f"(incl. its start; submit took {t_submit * 1000:.1f} ms)")
    if len(got) != len(keys):
        raise Failed(f"the symbolizer worker answered {len(got)} of {len(keys)} addresses")
    results.figure("worker_cold_s", round(t_all, 4), "s")
    results.figure("worker_submit_ms", round(t_submit * 1000, 2), "ms")
    if args.pyelftools:
        lp = next(iter(libs))
        done, cus, secs = pyelftools_only(lp, libs[lp], budget_s=args.pyelftools_budget)
        ours = sum(res["libs"][lp]["cold_cu"]) + sum(res["libs"][lp]["other"])
        print(f"pyelftools only, {Path(lp).name}: {done}/{len(libs[lp])} addresses "
              f"({cus} CUs) in {secs:.1f} s; memtrace all {len(libs[lp])} in {ours:.3f} s")
        if done == 0:
            raise Failed("pyelftools decoded no address")
        results.figure("pyelftools_only_s_per_address", round(secs / done, 5), "s")
        results.figure("memtrace_s_per_address", round(ours / len(libs[lp]), 6), "s")


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--pyelftools", action="store_true",
                    help="also time the pure-pyelftools way (up to 60 s)")
    args = ap.parse_args(argv)
    args.fraction, args.pyelftools_budget = 1.0, 60.0
    if args.smoke:  # every path, the pure-pyelftools one included, on a few addresses
        args.fraction, args.pyelftools, args.pyelftools_budget = 0.05, True, 2.0
    return run("bench_symbols", measure, args)


if __name__ == "__main__":
    sys.exit(main())
