"""The loader behaves as if memtrace were not there (issue 19, issue 10): dlopen/dlmopen of a
bare soname found through the calling library's $ORIGIN DT_RUNPATH or DT_RPATH, and
dlsym(RTLD_NEXT) relative to its caller, under `run`, `run --native` and `live` (attach: in
tests/attach/test_attach_loader.py)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.cli import MEMTRACE
from tests.tmux_support import Tmux
from tests.tracer import tracer_support as ts

DEP_BLOCK = 7_300_001  # tests/cfixtures/mtrpathdep.c

RPATH_SCRIPT = """\
import ctypes
import os
import sys

lib = ctypes.CDLL(os.environ["MT_RPATH_" + sys.argv[1].upper()])


def load():
    return getattr(lib, sys.argv[2])()  # @load


status = load()
print("loaded", status)
sys.exit(status)
"""


@pytest.mark.parametrize("native", [False, True], ids=["plain", "native"])
@pytest.mark.parametrize("function", ["mt_rpath_load", "mt_rpath_mload"],
                         ids=["dlopen", "dlmopen"])
@pytest.mark.parametrize("path", ["runpath", "rpath"])
def test_dlopen_through_the_callers_search_path(tmp_path, mt, path, function, native):
    (tmp_path / "prog.py").write_text(RPATH_SCRIPT)
    untraced = mt.plain("prog.py", path, function, cwd=tmp_path)
    assert untraced.returncode == 0, untraced.stderr.decode()
    options = ("--native",) if native else ()
    run = mt.trace(tmp_path, RPATH_SCRIPT, path, function, options=options).check()
    assert run.proc.stdout == untraced.stdout == b"loaded 0\n"
    # nothing from the program (a failed dlopen prints its error), only memtrace's notes
    assert all(line.startswith(b"memtrace: ") for line in run.proc.stderr.splitlines())
    live = ts.live_at(run.reader, "load", run.lines["load"])
    assert [s for _a, s, _k in live if s == DEP_BLOCK] == [DEP_BLOCK]
    loaded = {os.path.basename(entry[0]) for entry in run.reader.maps}
    assert "libmtrpathdep.so" in loaded


NEXT_SCRIPT = """\
import ctypes
import os

a = ctypes.CDLL(os.environ["MT_NEXT_A"])
b = ctypes.CDLL(os.environ["MT_NEXT_B"])
print(a.mt_probe(), b.mt_probe(), a.mt_next_probe())
"""


@pytest.mark.parametrize("native", [False, True], ids=["plain", "native"])
def test_dlsym_rtld_next_is_relative_to_its_caller(tmp_path, mt, native):
    (tmp_path / "prog.py").write_text(NEXT_SCRIPT)
    untraced = mt.plain("prog.py", cwd=tmp_path)
    assert untraced.stdout == b"1 2 2\n", untraced.stderr.decode()
    options = ("--native",) if native else ()
    run = mt.trace(tmp_path, NEXT_SCRIPT, options=options).check()
    assert run.proc.stdout == untraced.stdout


CTOR_SCRIPT = """\
import ctypes
import os


def load():
    return ctypes.CDLL(os.environ["MT_CTOR"])  # @load


lib = load()
print("loaded")
"""
CTOR_BLOCK = 65_537  # tests/cfixtures/mtctor.c


def test_allocation_inside_dlopen_has_the_whole_stack(tmp_path, mt, cbuild):
    """The constructor runs inside dlopen, below the return address the loader was lent
    (callas.h): its stack goes on through dlopen to ctypes and the Python caller."""
    run = mt.trace(tmp_path, CTOR_SCRIPT, options=("--native",)).check()
    assert run.proc.stdout == b"loaded\n"
    reader = run.reader
    live = [(sid, s) for _a, s, sid, _k in reader.live_allocations() if s == CTOR_BLOCK]
    assert len(live) == 1
    sid = live[0][0]
    python = [(reader.codes[code][0], line)
              for code, line, _entry in reader.py_stack(reader.stack_key(sid)[0])]
    init = "CDLL.__init__" if sys.version_info >= (3, 11) else "__init__"  # 3.10: co_name
    assert python[0][0] == init and ("load", run.lines["load"]) in python
    nativenode = reader.stack_key(sid)[1]
    assert ts.functions_on_stack(reader, nativenode, cbuild.mtctor)[:2] == [
        "mt_ctor_alloc", "mt_ctor"]
    proc = mt.cli("tree", "--json", "--leaks", "--threshold", "0", str(run.capture),
                  cwd=tmp_path)
    path = [f["function"] for f in ts.tree_path_to(json.loads(proc.stdout), CTOR_BLOCK)]
    assert path[:2] == ["<module>", "load"]
    assert path.index("py_dl_open") < path.index("dlopen_implementation") < path.index(
        "mt_ctor") < path.index("mt_ctor_alloc")
    assert not any("memtrace" in name for name in path)


MANY_SCRIPT = """\
import ctypes
import os


def load():
    return ctypes.CDLL(os.environ["MT_CTOR_MANY"])  # @load


lib = load()
print("loaded")
"""


def test_many_allocations_inside_nested_dlopen_have_whole_stacks(tmp_path, mt, cbuild):
    """A constructor's 41 blocks and a nested dlopen's: the frames outward of each loader
    call are kept from its first unwinding and reused by the next ones, and every stack is
    still the whole one, inner frames at their own depth."""
    many = ts.build_fixture(tmp_path, "mtctormany")
    saved = dict(mt.env)
    mt.env["MT_CTOR_MANY"] = str(many)
    try:
        run = mt.trace(tmp_path, MANY_SCRIPT, options=("--native",)).check()
    finally:
        mt.env.clear()
        mt.env.update(saved)
    assert run.proc.stdout == b"loaded\n"
    reader = run.reader
    stacks = {}
    for _addr, size, sid, _kind in reader.live_allocations():
        if size in (CTOR_BLOCK, 70100) or 70001 <= size <= 70040:
            assert size not in stacks, size
            stacks[size] = sid
    assert sorted(stacks) == [CTOR_BLOCK, *range(70001, 70041), 70100]
    init = "CDLL.__init__" if sys.version_info >= (3, 11) else "__init__"  # 3.10: co_name
    outer = set()
    for size, sid in stacks.items():
        python = [(reader.codes[code][0], line)
                  for code, line, _entry in reader.py_stack(reader.stack_key(sid)[0])]
        assert python[0][0] == init and ("load", run.lines["load"]) in python, size
        nativenode = reader.stack_key(sid)[1]
        names = ts.functions_on_stack(reader, nativenode, many)
        if size == CTOR_BLOCK:
            assert ts.functions_on_stack(reader, nativenode, cbuild.mtctor)[:2] == [
                "mt_ctor_alloc", "mt_ctor"]
            assert names == ["ctor_nested", "mt_ctor_many"]
        elif size == 70100:
            assert names == ["ctor_leaf", "ctor_nested", "mt_ctor_many"]
        elif (size - 70001) % 2:
            assert names == ["ctor_leaf", "ctor_mid", "ctor_many", "mt_ctor_many"], size
        else:
            assert names == ["ctor_leaf", "ctor_many", "mt_ctor_many"], size
        if size != CTOR_BLOCK:  # outward of mt_ctor_many: the same frames for all
            ips = reader.native_stack(nativenode)
            outer.add(tuple(ips[len(ips) - _depth_outward(reader, ips, many):]))
    assert len(outer) == 1
    # and they end where the main thread's stacks made outside dlopen end: at its start
    roots = Counter(tuple(ips[-3:]) for _a, _s, sid, _k in reader.live_allocations()
                    if len(ips := reader.native_stack(reader.stack_key(sid)[1])) > 3)
    assert next(iter(outer))[-3:] == roots.most_common(1)[0][0]
    proc = mt.cli("tree", "--json", "--leaks", "--threshold", "0", str(run.capture),
                  cwd=tmp_path)
    tree = json.loads(proc.stdout)
    evens, odds = (sum(range(70001 + k, 70041, 2)) for k in (0, 1))  # one node each
    for size in (evens, odds, 70100, CTOR_BLOCK):
        path = [f["function"] for f in ts.tree_path_to(tree, size)]
        assert path[:2] == ["<module>", "load"], size
        assert path.index("py_dl_open") < path.index("dlopen_implementation") < path.index(
            "mt_ctor_many"), size
        assert not any("memtrace" in name for name in path), size
    path = [f["function"] for f in ts.tree_path_to(tree, CTOR_BLOCK)]
    assert path.index("ctor_nested") < path.index("mt_ctor") < path.index("mt_ctor_alloc")


def _depth_outward(reader, ips, library) -> int:
    """How many of a stack's frames lie outward of LIBRARY's outermost frame."""
    maps = reader.maps
    real = library.resolve()
    last = max(i for i, ip in enumerate(ips)
               if (w := ts.module_of(maps, ip)) and Path(w[0]).resolve() == real)
    return len(ips) - last - 1


LIVE_SCRIPT = RPATH_SCRIPT.replace('print("loaded", status)', 'print("loaded", status, flush=True)')


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is required")
def test_dlopen_through_the_callers_search_path_under_live(tmp_path, mt):
    (tmp_path / "prog.py").write_text(LIVE_SCRIPT)
    env = dict(mt.env, XDG_CACHE_HOME=str(tmp_path / "cache"))
    live = " ".join(shlex.quote(a) for a in (*MEMTRACE, "live",
                                             "--native", "-o", "live.mtrace", "prog.py",
                                             "runpath", "mt_rpath_load"))
    t = Tmux(live, tmp_path, env, size=(140, 40))
    try:
        screen = t.wait_for(r"exited with status \d+", timeout=60)
        assert re.search(r"exited with status 0\b", screen), screen
        t.keys("q")
        assert "EXIT=0" in t.wait_for(r"EXIT=\d+", timeout=30)
    finally:
        t.close()
    from memtrace_core.reader import read_capture

    reader = read_capture(tmp_path / "live.mtrace")
    assert reader.complete and reader.trailer["exit_code"] == 0
    lines = mt.marker_lines(LIVE_SCRIPT)
    live = ts.live_at(reader, "load", lines["load"])
    assert [s for _a, s, _k in live if s == DEP_BLOCK] == [DEP_BLOCK]
    log = re.findall(r"\S+\.log", screen)
    assert not log or "cannot open shared object" not in open(log[0]).read()
