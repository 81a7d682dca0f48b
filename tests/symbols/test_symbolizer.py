"""Symbolizer behaviour: exact inline chains, demangling, stale libraries, debug-file
search, MiniDebugInfo, time box, persistent cache, module maps."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import msgpack

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.symbols import ModuleMap, Symbolizer
from memtrace_core.symbols.cache import pack_frames
from memtrace_core.symbols.elf import read_build_id
from memtrace_core.symbols.symbolizer import _Module
from tests.symbols.symbols_support import source_line


def _call_sites(lib: Path, func: str, callee: str) -> list[int]:
    """Addresses of the `call callee` instructions inside func (objdump)."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(lib)],
                          capture_output=True, text=True, check=True).stdout
    out, inside = [], False
    for ln in text.splitlines():
        if ln.endswith(f"<{func}>:"):
            inside = True
        elif inside and not ln.strip():
            inside = False
        elif inside and "call" in ln and f"<{callee}" in ln:
            out.append(int(ln.split(":")[0], 16))
    return out


def _addr_of(mod: _Module, name: str) -> int:
    (addr,) = {a for a, _, n in mod.symtab.syms if n == name}
    return addr


def test_forced_inline_helper_is_its_own_frame(libs):
    lib, src = libs["dwarf5"], libs["src"]
    sym = Symbolizer(persistent=False)
    (call,) = _call_sites(lib, "leaf_alloc", "malloc")
    frames = sym.resolve(str(lib), read_build_id(lib), call)
    assert frames == [
        Frame("helper_alloc", str(src), source_line(src, "HELPER_MALLOC"), FrameKind.INLINE,
              module=str(lib)),
        Frame("leaf_alloc", str(src), source_line(src, "LEAF_CALL"), FrameKind.NATIVE,
              module=str(lib)),
    ]


def test_two_levels_of_inlining(libs):
    lib, src = libs["dwarf4"], libs["src"]
    sym = Symbolizer(persistent=False)
    (call,) = _call_sites(lib, "deep_alloc", "malloc")
    frames = sym.resolve(str(lib), read_build_id(lib), call)
    assert [(f.function, f.line, f.kind) for f in frames] == [
        ("helper_alloc", source_line(src, "HELPER_MALLOC"), FrameKind.INLINE),
        ("twice_inlined", source_line(src, "TWICE_CALL"), FrameKind.INLINE),
        ("deep_alloc", source_line(src, "DEEP_CALL"), FrameKind.NATIVE),
    ]


def test_cpp_names_are_demangled(libs):
    lib = libs["cpp5"]
    sym = Symbolizer(persistent=False)
    mod = _Module(str(lib), None, 0)
    grow = _addr_of(mod, "_ZN3geo4GridIdE4growEi")
    frames = sym.resolve(str(lib), read_build_id(lib), grow)
    assert frames[-1].function == "geo::Grid<double>::grow(int)"
    assert frames[-1].file == str(libs["cppsrc"])
    assert frames[-1].kind is FrameKind.NATIVE


def test_unknown_address_has_no_symbol(libs):
    lib = libs["dwarf5"]
    sym = Symbolizer(persistent=False)
    frames = sym.resolve(str(lib), read_build_id(lib), 0x7)
    assert frames == [Frame("lib_dwarf5.so+0x7", "", 0, FrameKind.NO_SYMBOL, module=str(lib))]


def test_stale_library_wrong_build_id_and_gone(libs, tmp_path):
    lib = libs["dwarf5"]
    sym = Symbolizer(persistent=False)
    (call,) = _call_sites(lib, "leaf_alloc", "malloc")
    frames = sym.resolve(str(lib), "00" * 20, call)
    assert frames == [Frame(f"<library changed: {lib}>", "", 0, FrameKind.NO_SYMBOL,
                            module=str(lib))]
    gone = tmp_path / "gone.so"
    assert sym.resolve(str(gone), "ab" * 20, 0x1000)[0].function == f"<library changed: {gone}>"
    assert sym.stale_libraries() == sorted([str(lib), str(gone)])
    # the right build-id still resolves
    assert sym.resolve(str(lib), read_build_id(lib), call)[0].function == "helper_alloc"


def test_rebuilt_library_is_stale(libs, tmp_path):
    lib = tmp_path / "libre.so"
    shutil.copy(libs["dwarf5"], lib)
    old = read_build_id(lib)
    src = tmp_path / "x.c"
    src.write_text(libs["src"].read_text() + "\nint extra(void) { return 42; }\n")
    subprocess.run(["gcc", "-g", "-O2", "-shared", "-fPIC", str(src), "-o", str(lib)],
                   check=True)
    sym = Symbolizer(persistent=False)
    assert sym.resolve(str(lib), old, 0x1100)[0].function.startswith("<library changed")
    assert sym.stale_libraries() == [str(lib)]


def test_debuglink_search(libs):
    lib = libs["debuglink"]
    mod = _Module(str(lib), read_build_id(lib), 0)
    assert mod.debug_path == str(lib.parent / ".debug" / "libdl.so.debug")
    (call,) = _call_sites(lib, "leaf_alloc", "malloc") or [None]
    sym = Symbolizer(persistent=False)
    mod5 = _Module(str(libs["dwarf5"]), None, 0)
    leaf = _addr_of(mod5, "leaf_alloc")
    frames = sym.resolve(str(lib), read_build_id(lib), leaf + 8)
    assert frames[-1].function == "leaf_alloc" and frames[-1].file == str(libs["src"])


def test_minidebuginfo_gives_local_names(libs):
    lib = libs["minidebuginfo"]
    mod5 = _Module(str(libs["dwarf5"]), None, 0)
    sum_to = _addr_of(mod5, "sum_to")
    sym = Symbolizer(persistent=False)
    frames = sym.resolve(str(lib), read_build_id(lib), sum_to + 4)
    assert frames == [Frame("sum_to", "", 0, FrameKind.NATIVE, module=str(lib))]
    # leaf_alloc is exported too; a .gnu_debugdata-only name: the static helpers are
    # inlined, so check that the table came from .gnu_debugdata by its size
    assert len(_Module(str(lib), None, 0).symtab) >= 5


def test_stripped_without_debug_uses_symbol_table(libs, tmp_path):
    lib = tmp_path / "libstripped.so"
    shutil.copy(libs["dwarf5"], lib)
    subprocess.run(["strip", "--strip-debug", str(lib)], check=True)
    mod5 = _Module(str(libs["dwarf5"]), None, 0)
    middle = _addr_of(mod5, "middle")
    sym = Symbolizer(persistent=False)
    assert sym.resolve(str(lib), read_build_id(lib), middle + 3) == [
        Frame("middle", "", 0, FrameKind.NATIVE, module=str(lib))]


def test_time_box_falls_back_to_symbol_table(libpython):
    mod = _Module(str(libpython), None, 0)
    ev = _addr_of(mod, "_PyEval_EvalFrameDefault")
    sym = Symbolizer(persistent=False, time_box_s=1e-9)
    frames = sym.resolve(str(libpython), read_build_id(libpython), ev + 100)
    assert frames == [Frame("_PyEval_EvalFrameDefault", "", 0, FrameKind.NATIVE,
                            module=str(libpython))]
    assert any("skipped" in n and "time box" in n for n in sym.notes), sym.notes
    # with the normal box the same address has its file and line
    full = Symbolizer(persistent=False).resolve(str(libpython), read_build_id(libpython),
                                                ev + 100)
    assert full[-1].function == "_PyEval_EvalFrameDefault" and full[-1].file.endswith(".c")


def test_persistent_cache_second_run_and_corruption(libs, tmp_path):
    lib = libs["dwarf5"]
    bid = read_build_id(lib)
    (call,) = _call_sites(lib, "leaf_alloc", "malloc")
    first = Symbolizer(cache_dir=tmp_path)
    want = first.resolve_many([(str(lib), bid, call)])[(str(lib), bid, call)]
    files = list((tmp_path / "symbols").iterdir())
    assert [f.name for f in files] == [f"{bid}.v2.msgpack"]
    # each address's frames are bytes of their own, decoded only when asked for
    stored = msgpack.unpackb(files[0].read_bytes(), strict_map_key=False)
    assert isinstance(stored[call], bytes) and msgpack.unpackb(stored[call])
    second = Symbolizer(cache_dir=tmp_path)
    assert second.resolve(str(lib), bid, call) == want
    assert (str(lib), bid) not in second._modules  # answered from the cache: not opened
    files[0].write_bytes(b"\xc1garbage")  # corrupt: ignored, rebuilt
    third = Symbolizer(cache_dir=tmp_path)
    assert third.resolve_many([(str(lib), bid, call)])[(str(lib), bid, call)] == want
    assert msgpack.unpackb(files[0].read_bytes(), strict_map_key=False)[call]
    # parseable but damaged entries are decoded again
    files[0].write_bytes(msgpack.packb({call: msgpack.packb([["x"]]), call + 1: b"\xc1",
                                        call + 2: "junk", "k": 5}))
    fourth = Symbolizer(cache_dir=tmp_path)
    assert fourth.resolve(str(lib), bid, call) == want
    assert fourth.resolve_many([(str(lib), bid, call + 1)])[(str(lib), bid, call + 1)]
    assert Symbolizer(cache_dir=tmp_path).resolve(str(lib), bid, call) == want


def test_resolve_module_answers_as_resolve_does(libs, tmp_path):
    """A module's addresses at once (the exit-time naming): the cached ones taken in one
    pass, without opening the library, the others resolved (and cached), damaged entries
    resolved again; every answer the one resolve() gives."""
    lib = libs["dwarf5"]
    bid = read_build_id(lib)
    (call,) = _call_sites(lib, "leaf_alloc", "malloc")
    others = [call + 1, call + 2]
    want = {v: Symbolizer(persistent=False).resolve(str(lib), bid, v) for v in [call, *others]}
    Symbolizer(cache_dir=tmp_path).resolve_many([(str(lib), bid, call)])
    first = Symbolizer(cache_dir=tmp_path)
    assert first.resolve_module(str(lib), bid, [call]) == {call: want[call]}
    assert (str(lib), bid) not in first._modules  # all from the cache
    assert first.resolve_module(str(lib), bid, [call, *others]) == want
    assert (str(lib), bid) in first._modules  # the others needed the library
    first.flush()
    second = Symbolizer(cache_dir=tmp_path)
    assert second.resolve_module(str(lib), bid, [*others, call]) == want
    assert (str(lib), bid) not in second._modules
    (stored,) = (tmp_path / "symbols").iterdir()
    stored.write_bytes(msgpack.packb({call: b"\xc1", others[0]: "junk"}))
    assert Symbolizer(cache_dir=tmp_path).resolve_module(str(lib), bid, [call, *others]) == want


def test_persistent_cache_reads_version_1_files(libs, tmp_path):
    """A library named before the cache's version 2 (frames stored inline, version 1) is
    still answered from its old file, without opening the library, and its answers move to
    a version-2 file at once (with those of new addresses)."""
    lib = libs["dwarf5"]
    bid = read_build_id(lib)
    (call,) = _call_sites(lib, "leaf_alloc", "malloc")
    want = Symbolizer(persistent=False).resolve(str(lib), bid, call)
    symbols = tmp_path / "symbols"
    symbols.mkdir()
    (symbols / f"{bid}.v1.msgpack").write_bytes(msgpack.packb({call: pack_frames(want)}))
    v2 = symbols / f"{bid}.v2.msgpack"
    old = Symbolizer(cache_dir=tmp_path)
    assert old.resolve_many([(str(lib), bid, call)]) == {(str(lib), bid, call): want}
    assert (str(lib), bid) not in old._modules  # answered from the version-1 file
    stored = msgpack.unpackb(v2.read_bytes(), strict_map_key=False)
    assert list(stored) == [call] and msgpack.unpackb(stored[call]) == pack_frames(want)
    # a new address of that library joins it
    again = Symbolizer(cache_dir=tmp_path)
    assert again.resolve(str(lib), bid, call) == want
    assert (str(lib), bid) not in again._modules
    again.resolve_many([(str(lib), bid, call + 1)])
    assert set(msgpack.unpackb(v2.read_bytes(), strict_map_key=False)) == {call, call + 1}


def test_persistent_cache_for_a_library_without_build_id(libs, tmp_path):
    """A library without a build-id (wheels vendor such) is cached too, under its file's
    identity: a second symbolizer answers without opening it; a rebuilt file is new."""
    lib = tmp_path / "libnobid.so"
    subprocess.run(["gcc", "-g", "-O2", "-shared", "-fPIC", "-Wl,--build-id=none",
                    str(libs["src"]), "-o", str(lib)], check=True, capture_output=True)
    assert read_build_id(lib) is None
    (call,) = _call_sites(lib, "leaf_alloc", "malloc")
    cache = tmp_path / "cache"
    want = Symbolizer(cache_dir=cache).resolve_many([(str(lib), None, call)])[
        (str(lib), None, call)]
    assert want[0].function == "leaf_alloc" or want[-1].function == "leaf_alloc"
    assert len(list((cache / "symbols").iterdir())) == 1
    second = Symbolizer(cache_dir=cache)
    assert second.cached(str(lib), None, call) == want
    assert (str(lib), None) not in second._modules  # answered from the cache: not opened
    # the same path rebuilt (another size, time, inode): not the cached answers
    os.unlink(lib)
    subprocess.run(["gcc", "-g", "-O0", "-shared", "-fPIC", "-Wl,--build-id=none",
                    str(libs["src"]), "-o", str(lib)], check=True, capture_output=True)
    assert Symbolizer(cache_dir=cache).cached(str(lib), None, call) is None


def test_cache_concurrent_writers(libs, tmp_path):
    lib = libs["dwarf5"]
    mod = _Module(str(lib), None, 0)
    addrs = [a for a, size, _ in mod.symtab.syms if size]
    script = textwrap.dedent(f"""
        import sys
        from memtrace_core.symbols import Symbolizer
        from pathlib import Path
        s = Symbolizer(cache_dir=Path({str(tmp_path)!r}))
        for i in range(40):
            s.resolve_many([({str(lib)!r}, {read_build_id(lib)!r}, a + i)
                            for a in {addrs!r}])
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env) for _ in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    (f,) = (tmp_path / "symbols").glob("*.msgpack")
    table = msgpack.unpackb(f.read_bytes(), strict_map_key=False)
    assert set(addrs) <= set(table)
    assert not list((tmp_path / "symbols").glob("*.tmp"))


def test_module_map_lookup():
    maps = [
        ["/lib/a.so", 0x7F0000000000, "aa" * 20,
         [[0, 0x1000, 5, 0], [0x2000, 0x500, 6, 0x1000]]],
        ["/bin/exe", 0x400000 - 0x400000, None, [[0x400000, 0x2000, 5, 0]]],
    ]
    mm = ModuleMap(maps)
    assert mm.lookup(0x7F0000000000) == ("/lib/a.so", "aa" * 20, 0)
    assert mm.lookup(0x7F0000000FFF) == ("/lib/a.so", "aa" * 20, 0xFFF)
    assert mm.lookup(0x7F0000001000) is None  # between segments
    assert mm.lookup(0x7F0000002123) == ("/lib/a.so", "aa" * 20, 0x2123)
    assert mm.lookup(0x7F0000002500) is None
    assert mm.lookup(0x401234) == ("/bin/exe", None, 0x401234)
    assert mm.lookup(0x10) is None


def test_no_recorded_build_id_resolves_and_caches_by_file(libs, tmp_path):
    lib = libs["dwarf5"]
    (call,) = _call_sites(lib, "leaf_alloc", "malloc")
    sym = Symbolizer(cache_dir=tmp_path)
    frames = sym.resolve_many([(str(lib), None, call)])[(str(lib), None, call)]
    assert [f.function for f in frames] == ["helper_alloc", "leaf_alloc"]
    assert sym.stale_libraries() == []
    # no build-id to key the disk entry by: the file's identity keys it
    assert len(list((tmp_path / "symbols").iterdir())) == 1
    assert Symbolizer(cache_dir=tmp_path).cached(str(lib), None, call) == frames


def test_file_replaced_by_non_elf_is_stale(tmp_path):
    fake = tmp_path / "libfake.so"
    fake.write_text("not an ELF file\n")
    sym = Symbolizer(persistent=False)
    assert sym.resolve(str(fake), "ab" * 20, 0x10)[0].function == f"<library changed: {fake}>"
    assert sym.stale_libraries() == [str(fake)]
