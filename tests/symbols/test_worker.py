"""SymbolizerWorker: same answers as the in-process symbolizer, in batches, never
blocking poll(), stale libraries reported, clean shutdown."""

from __future__ import annotations

import time

from memtrace_core.symbols import Symbolizer, SymbolizerWorker
from memtrace_core.symbols.elf import read_build_id
from memtrace_core.symbols.symbolizer import _Module


def test_worker_matches_in_process(libs, libpython, tmp_path):
    keys = []
    for lib in (libs["dwarf5"], libs["cpp5"], libpython):
        mod = _Module(str(lib), None, 0)
        bid = read_build_id(lib)
        keys += [(str(lib), bid, a + 1) for a, size, _ in mod.symtab.syms[:300] if size > 1]
    keys.append((str(libs["dwarf4"]), "11" * 20, 0x1000))  # stale
    want = Symbolizer(persistent=False).resolve_many(keys)
    with SymbolizerWorker(cache_dir=tmp_path) as w:
        t = time.perf_counter()
        w.submit(keys)
        first = w.poll()
        assert time.perf_counter() - t < 0.5  # poll never waits for the batch
        got = dict(first)
        got.update(w.wait(timeout=60))
        assert w.pending == 0
        assert got == want
        assert w.stale_libraries() == [str(libs["dwarf4"])]
        w.submit(keys[:5])  # already answered keys are answered again (from its memo)
        assert set(w.wait(timeout=30)) == set(keys[:5])
    assert w._proc.returncode == 0
    assert list((tmp_path / "symbols").glob("*.msgpack"))  # flushed on close
