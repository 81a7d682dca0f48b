"""Symbolization speed: >= 1,000 unique real addresses in libpython (+ libc with its
debug file, + numpy's _multiarray_umath when present), cold process, warm, and from the
persistent cache, against binutils `addr2line -f -i` and `eu-addr2line -f -i -C`.

Run: python benchmarks/bench_symbols.py [--pyelftools]  (targets printed beside the
figures; --pyelftools also times the pure-pyelftools decoding for up to 60 s)
"""

from __future__ import annotations

import glob
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def libraries() -> dict[str, list[int]]:
    libs: dict[str, list[int]] = {}
    lp = Path(sysconfig.get_config_var("LIBDIR")) / (
        sysconfig.get_config_var("INSTSONAME") or "libpython3.11.so.1.0")
    libs[str(lp)] = sample(str(lp), 1050)
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    bid = read_build_id(libc) if os.path.exists(libc) else None
    if bid and os.path.exists(f"/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug"):
        libs[libc] = sample(libc, 500)
    venv = Path(sys.prefix)
    for np in glob.glob(str(venv / "lib/python3*/site-packages/numpy/*/_multiarray_umath*.so")):
        libs[np] = sample(np, 500)
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
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(
        {"libs": libs, "cache": cache, "warm": warm}), capture_output=True, text=True,
        env=env, check=True).stdout
    return json.loads(out), time.perf_counter() - t


def run_tool(argv: list[str], libs: dict[str, list[int]]) -> float:
    t = time.perf_counter()
    for lib, addrs in libs.items():
        # exit status 1 only says some address had no answer
        subprocess.run([*argv, "-e", lib, *[hex(a) for a in addrs]], capture_output=True)
    return time.perf_counter() - t


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


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


def main() -> None:
    libs = libraries()
    n = sum(len(v) for v in libs.values())
    per_lib = ", ".join(f"{Path(k).name}: {len(v)}" for k, v in libs.items())
    print(f"addresses: {n} unique ({per_lib})")
    a2l = min(run_tool(["addr2line", "-f", "-i"], libs) for _ in range(3)) \
        if shutil.which("addr2line") else float("nan")
    eu = min(run_tool(["eu-addr2line", "-f", "-i", "-C"], libs) for _ in range(3)) \
        if shutil.which("eu-addr2line") else float("nan")
    colds = []
    for _ in range(3):
        res, wall = child(libs, None, warm=True)
        colds.append((res["total_s"], res, wall))
    colds.sort(key=lambda x: x[0])
    total, res, wall = colds[len(colds) // 2]
    cold_cu = [x for v in res["libs"].values() for x in v["cold_cu"]]
    warm = [x for v in res["libs"].values() for x in v["warm"]]
    print(f"addr2line -f -i          {a2l:7.3f} s")
    print(f"eu-addr2line -f -i -C    {eu:7.3f} s")
    print(f"memtrace cold process    {total:7.3f} s  (median of 3; ratio to addr2line "
          f"{total / a2l:.2f}x, target <= 1x; process wall {wall:.2f} s, import "
          f"{res['import_s'] * 1000:.0f} ms)")
    print(f"  cold CU decodes: {len(cold_cu)}, p90 {pct(cold_cu, 90) * 1000:.1f} ms "
          f"(target <= 30), worst {max(cold_cu) * 1000:.1f} ms (target <= 250)")
    print(f"  warm address: median {statistics.median(warm) * 1e6:.0f} us, p99 "
          f"{pct(warm, 99) * 1000:.3f} ms (target <= 3)")
    for lib, v in res["libs"].items():
        print(f"  {Path(lib).name}: {len(v['cold_cu'])} cold CUs, cold-CU worst "
              f"{max(v['cold_cu'] or [0]) * 1000:.1f} ms")
    if res["notes"]:
        print("  notes:", res["notes"][:3])
    with tempfile.TemporaryDirectory() as cache:
        child(libs, cache, warm=False)
        second = sorted(child(libs, cache, warm=False)[0]["total_s"] for _ in range(3))
    print(f"second run from persistent cache {second[1]:.3f} s (median of 3; target <= 0.2)")
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
    if "--pyelftools" in sys.argv:
        lp = next(iter(libs))
        done, cus, secs = pyelftools_only(lp, libs[lp], budget_s=60)
        ours = sum(res["libs"][lp]["cold_cu"]) + sum(res["libs"][lp]["other"])
        print(f"pyelftools only, {Path(lp).name}: {done}/{len(libs[lp])} addresses "
              f"({cus} CUs) in {secs:.1f} s; memtrace all {len(libs[lp])} in {ours:.3f} s")


if __name__ == "__main__":
    main()
