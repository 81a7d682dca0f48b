"""SymbolizerWorker: same answers as the in-process symbolizer, in batches, never
blocking poll(), stale libraries reported, clean shutdown."""

from __future__ import annotations

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
        w.submit(keys)
        got = dict(w.poll())  # whatever is there: poll does not wait
        assert w.pending == len(set(keys)) - len(got)
        got.update(w.wait(timeout=60))
        assert w.pending == 0
        assert got == want
        assert w.stale_libraries() == [str(libs["dwarf4"])]
        w.submit(keys[:5])  # already answered keys are answered again (from its memo)
        assert set(w.wait(timeout=30)) == set(keys[:5])
    assert w._proc.returncode == 0
    assert list((tmp_path / "symbols").glob("*.msgpack"))  # flushed on close


def test_submit_never_blocks_on_a_full_pipe(libpython, tmp_path):
    mod = _Module(str(libpython), None, 0)
    bid = read_build_id(libpython)
    keys = [(str(libpython), bid, a + k) for a, size, _ in mod.symtab.syms[:4000]
            for k in range(0, min(size, 24), 8)]
    assert len(keys) > 5000  # far more than a pipe buffer holds
    with SymbolizerWorker(cache_dir=tmp_path) as w:
        w.submit(keys)
        assert w._out  # returned with most requests still queued, not blocked on the pipe
        got = w.wait(timeout=120)
    assert len(got) == len(set(keys))
