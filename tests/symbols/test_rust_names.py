"""Rust names read as Rust prints them. PyO3 extensions (polars, pydantic-core, orjson...)
ship stripped libraries whose symbol table holds v0 names (`_RNv...`) or legacy ones
(`_ZN...17h<hash>E`): a library built here by gcc takes such names (asm labels), and a
traced program allocates through them. Older captures' names sections and older symbol
caches kept the mangled names: they read demangled too."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import zstandard

from memtrace_core.demangle import demangle, is_rust_name
from memtrace_core.frames import Frame, FrameKind
from memtrace_core.reader.names_section import _decode
from memtrace_core.symbols.cache import unpack_frames
from memtrace_core.symbols.elf import read_build_id
from memtrace_core.symbols.symbolizer import Symbolizer, _Module
from tests.cli import memtrace_env, run_memtrace

V0_LEAF = "_RNvNtCs4fqI2P2rA04_7mtcrate5cache9grow_leak"
V0_CALLER = "_RNvMs_NtCs4fqI2P2rA04_7mtcrate5cacheNtB4_5Cache6insert"
LEGACY = "_ZN7mtcrate5cache11legacy_keep17h0123456789abcdefE"

RUST_SRC = f"""
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) void *grow_leak(size_t n) __asm__("{V0_LEAF}");
__attribute__((noinline)) void *grow_leak(size_t n) {{
    void *p = malloc(n);
    if (p) memset(p, 7, n);
    return p;
}}
__attribute__((noinline)) void *cache_insert(size_t n) __asm__("{V0_CALLER}");
__attribute__((noinline)) void *cache_insert(size_t n) {{
    void *p = grow_leak(n);
    __asm__ volatile("" ::: "memory"); /* no tail call: this frame stays on the stack */
    return p;
}}
__attribute__((noinline)) void *legacy_keep(size_t n) __asm__("{LEGACY}");
__attribute__((noinline)) void *legacy_keep(size_t n) {{
    void *p = malloc(n);
    if (p) memset(p, 9, n);
    __asm__ volatile("" ::: "memory");
    return p;
}}
void *entry_v0(size_t n) {{ void *p = cache_insert(n); __asm__ volatile(""); return p; }}
void *entry_legacy(size_t n) {{ void *p = legacy_keep(n); __asm__ volatile(""); return p; }}
"""

PROGRAM = """\
import ctypes, os, sys
lib = ctypes.CDLL(sys.argv[1])
lib.entry_v0.restype = lib.entry_legacy.restype = ctypes.c_void_p
lib.entry_v0.argtypes = lib.entry_legacy.argtypes = [ctypes.c_size_t]
kept = [lib.entry_v0(3 << 20), lib.entry_legacy(5 << 20)]
print("ok")
"""


@pytest.fixture(scope="module")
def rust_lib(tmp_path_factory) -> Path:
    """The library, stripped of debug information as extension wheels ship."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    d = tmp_path_factory.mktemp("rustnames")
    (d / "rust.c").write_text(RUST_SRC)
    lib = d / "libmtrust.so"
    proc = subprocess.run(["gcc", "-O2", "-fPIC", "-shared", "-fno-omit-frame-pointer",
                           str(d / "rust.c"), "-o", str(lib)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    subprocess.run(["strip", "--strip-debug", str(lib)], check=True)
    return lib


def test_demangle_reads_v0_legacy_and_cpp_names():
    assert demangle(V0_LEAF) == "mtcrate::cache::grow_leak"
    assert demangle(V0_CALLER) == "<mtcrate::cache::Cache>::insert"
    assert demangle(LEGACY) == "mtcrate::cache::legacy_keep"  # no hash
    assert demangle(LEGACY + ".llvm.4711") == "mtcrate::cache::legacy_keep"
    # C++ still through the C++ runtime, and a C++ nested name is not taken for Rust
    assert not is_rust_name("_ZN3geo4GridIdE4growEi")
    assert demangle("_ZN3geo4GridIdE4growEi") == "geo::Grid<double>::grow(int)"
    # names no demangler reads stay as they are
    for name in ("_Rnot_rust", "_R", "malloc", "_PyObject_Malloc", "_ZNfoo17h0123E"):
        assert demangle(name) == name


def test_without_the_rust_demangler_names_stay_mangled(monkeypatch):
    import memtrace_core.demangle as dm

    monkeypatch.setitem(sys.modules, "pyderust", None)  # import fails
    monkeypatch.setattr(dm, "_RUST", None)
    dm.demangle.cache_clear()
    try:
        assert dm.demangle(V0_LEAF) == V0_LEAF
        # a legacy Rust name is an Itanium one: the C++ demangler reads it, hash and all
        assert dm.demangle(LEGACY) == "mtcrate::cache::legacy_keep::h0123456789abcdef"
        assert dm.demangle("_ZN3geo4GridIdE4growEi") == "geo::Grid<double>::grow(int)"
    finally:
        dm.demangle.cache_clear()


def test_symbol_table_rust_names_are_demangled(rust_lib):
    sym = Symbolizer(persistent=False)
    mod = _Module(str(rust_lib), None, 0)
    found = {}
    for name in (V0_LEAF, V0_CALLER, LEGACY):
        vaddr = next(a for a, _, n in mod.symtab.syms if n == name) + 4
        (frame,) = sym.resolve(str(rust_lib), read_build_id(rust_lib), vaddr)
        found[name] = (frame.function, frame.kind)
    assert found == {V0_LEAF: ("mtcrate::cache::grow_leak", FrameKind.NATIVE),
                     V0_CALLER: ("<mtcrate::cache::Cache>::insert", FrameKind.NATIVE),
                     LEGACY: ("mtcrate::cache::legacy_keep", FrameKind.NATIVE)}


def test_older_cache_entries_and_names_sections_read_demangled(tmp_path):
    packed = [[V0_LEAF, "", 0, 0], ["plain_c", "a.c", 3, 0]]
    frames = unpack_frames(packed, "/x/lib.so")
    assert [f.function for f in frames] == ["mtcrate::cache::grow_leak", "plain_c"]
    # a version-2 names section as a memtrace that did not demangle Rust wrote it
    payload = {"strings": ["/x/lib.so", V0_LEAF, LEGACY, "src/lib.rs"],
               "kinds": ["native", "inline"],
               "modules": [["/x/lib.so", "ab" * 20, [0x1000, 0x10], [1, 2], [1, 2, 1],
                            [3, 3, 3], [10, 20, 21], [0, 1, 0], [-1, -1, -1]]],
               "host": "h", "created": 1.0}
    names = _decode("old.mtrace", zstandard.ZstdCompressor().compress(msgpack.packb(payload)), 2)
    assert names.frames[("/x/lib.so", "ab" * 20, 0x1000)] == [
        Frame("mtcrate::cache::grow_leak", "src/lib.rs", 10, FrameKind.NATIVE, "/x/lib.so")]
    assert [f.function for f in names.frames[("/x/lib.so", "ab" * 20, 0x1010)]] == [
        "mtcrate::cache::legacy_keep", "mtcrate::cache::grow_leak"]


def test_a_traced_program_shows_rust_names(rust_lib, tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    capture = tmp_path / "rust.mtrace"
    env = memtrace_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    run = run_memtrace("run", "--native", "-o", str(capture), str(script), str(rust_lib),
                       env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"ok\n"
    table = run_memtrace("table", "--leaks", "--json", "-n", "0", str(capture), env=env,
                         text=True)
    assert table.returncode == 0, table.stderr
    rows = {r["function"]: r for r in json.loads(table.stdout)["rows"]}
    assert (rows["mtcrate::cache::grow_leak"]["own_bytes"],
            rows["mtcrate::cache::grow_leak"]["own_count"]) == (3 << 20, 1)
    assert rows["<mtcrate::cache::Cache>::insert"]["total_bytes"] == 3 << 20
    assert (rows["mtcrate::cache::legacy_keep"]["own_bytes"],
            rows["mtcrate::cache::legacy_keep"]["own_count"]) == (5 << 20, 1)
    assert not [name for name in rows if name.startswith(("_R", "_ZN7mtcrate"))]
