"""The C symbol table (symbols/_symtab.pyx) against a reference built from pyelftools' own
symbol iteration with the rules the table keeps: function symbols only, a version suffix
left out, at one address a global name over a weak one over a local one and an exported
name over all, the covering sized symbol first, else the nearest zero-size one."""

from __future__ import annotations

import bisect
import io
import lzma
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from memtrace_core.symbols.elf import SymbolTable
from memtrace_core.symbols.symbolizer import _Module

SRC = r"""
int target(int x) { return x * 3 + 1; }
int alias_global(int) __attribute__((alias("target")));
int alias_weak(int) __attribute__((weak, alias("target")));
static int hidden_local(int x) { return x - 2; }
int use_local(int x) { return hidden_local(x) + 1; }
int new_api(int x) { return x + 40; }
int old_api(int x) { return x + 20; }
__asm__(".symver old_api, api@VERS_1");
__asm__(".symver new_api, api@@VERS_2");
__asm__(".globl bare_label\n.type bare_label, @function\nbare_label:\n ret\n");
int after_label(int x) { return x * 7; }
"""

VERSIONS = "VERS_1 { global: api; target; alias_global; alias_weak; use_local; };\n" \
           "VERS_2 { global: api; after_label; bare_label; } VERS_1;\n"

BIND_RANK = {"STB_LOCAL": 0, "STB_WEAK": 1, "STB_GLOBAL": 2}


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("symtab")
    (tmp / "s.c").write_text(SRC)
    (tmp / "v.map").write_text(VERSIONS)
    out = tmp / "libsymtab.so"
    subprocess.run(["gcc", "-O1", "-fPIC", "-shared", "-fno-inline", str(tmp / "s.c"),
                    f"-Wl,--version-script={tmp / 'v.map'}", "-o", str(out)], check=True)
    return out


def reference(path: Path) -> list[tuple[int, int, str, int]]:
    """(addr, size, name, rank) by pyelftools, as the symbolizer's table is filled."""

    def functions(elf: ELFFile, name: str, rank_add: int = 0) -> list:
        sec = elf.get_section_by_name(name)
        out = []
        for s in sec.iter_symbols() if sec is not None else ():
            if (s["st_info"]["type"] not in ("STT_FUNC", "STT_LOOS")  # LOOS = GNU_IFUNC
                    or s["st_shndx"] == "SHN_UNDEF" or s["st_value"] == 0):
                continue
            name_ = s.name[:s.name.index("@")] if s.name.find("@") > 0 else s.name
            out.append((s["st_value"], s["st_size"], name_,
                        BIND_RANK.get(s["st_info"]["bind"], 0) + rank_add))
        return out

    with open(path, "rb") as f:
        elf = ELFFile(f)
        syms = functions(elf, ".symtab") or functions(elf, ".dynsym")
        debugdata = elf.get_section_by_name(".gnu_debugdata")
        if not elf.get_section_by_name(".symtab") and debugdata is not None:
            inner = ELFFile(io.BytesIO(lzma.decompress(debugdata.data())))
            syms = (functions(inner, ".symtab") or functions(inner, ".dynsym")) + syms
        return sorted(set(syms + functions(elf, ".dynsym", 3)),
                      key=lambda s: (s[0], s[3], s[2], s[1]))


def reference_lookup(ranked: list, addrs: list[int], vaddr: int):
    i = bisect.bisect_right(addrs, vaddr) - 1
    best = None
    j = i
    while j >= 0 and addrs[j] == addrs[i]:
        a, size, name, _ = ranked[j]
        if a <= vaddr < a + size:
            return (a, size, name)
        if size == 0 and best is None:
            best = (a, size, name)
        j -= 1
    return best


def check_against_reference(path: Path, probes_per_symbol: int = 3) -> SymbolTable:
    ranked = reference(path)
    table = _Module(str(path), None, 0).symtab
    assert table.syms == [(a, size, n) for a, size, n, _ in ranked]
    probes = {0, ranked[-1][0] + ranked[-1][1] + 64}
    for a, size, _, _ in ranked:
        probes.update({a - 1, a, a + max(size - 1, 0), a + size})
        probes.update(a + k * size // (probes_per_symbol + 1) for k in range(probes_per_symbol))
    addrs = [s[0] for s in ranked]
    for v in sorted(probes):
        assert table.lookup(v) == reference_lookup(ranked, addrs, v), hex(v)
    names_at: dict[int, list[str]] = {}
    for a, _, n, _ in ranked:
        names_at.setdefault(a, []).append(n)
    for a, names in names_at.items():
        assert table.aliases(a) == names
    return table


def test_aliases_weak_local_and_versioned_names(lib):
    table = check_against_reference(lib)
    names = {n for _, _, n in table.syms}
    assert {"target", "alias_global", "alias_weak", "hidden_local", "api", "bare_label",
            "after_label"} <= names
    assert not any("@" in n for n in names)  # api@VERS_1, api@@VERS_2: the version left out
    target = next(a for a, _, n in table.syms if n == "target")
    # exported global names (rank 5) after the .symtab ones, weak before global: the
    # preferred name of the place is the exported global one sorting last
    assert table.aliases(target)[-1] in ("alias_global", "target")
    assert table.aliases(target)[:2] == ["alias_weak", "alias_global"]
    assert table.lookup(target + 1)[2] == table.aliases(target)[-1]
    # a zero-size label answers for the bytes after it that no sized symbol covers
    label = next(a for a, size, n in table.syms if n == "bare_label")
    assert table.lookup(label)[:2] == (label, 0)


def test_real_libraries_agree_with_the_reference(libpython):
    import ctypes.util

    check_against_reference(libpython, probes_per_symbol=1)
    libc = Path("/lib/x86_64-linux-gnu/libc.so.6")
    if not libc.exists():
        libc = Path(ctypes.util.find_library("c") or "")
    if libc.is_file():  # Debian's libc: MiniDebugInfo and .dynsym, no .symtab
        check_against_reference(libc, probes_per_symbol=1)


def test_names_given_one_by_one_and_misuse():
    table = SymbolTable([(0x2000, 16, "b", 2), (0x1000, 0, "a", 0), (0x2000, 16, "b", 2),
                         (0x2000, 16, "é", 1), (0x1000, 8, "a2", 2), (0x1000, 0, "a1", 1)])
    assert table.syms == [(0x1000, 0, "a"), (0x1000, 0, "a1"), (0x1000, 8, "a2"),
                          (0x2000, 16, "é"), (0x2000, 16, "b")]
    assert table.lookup(0x1004) == (0x1000, 8, "a2")
    # past a2: the preferred zero-size symbol of the place
    assert table.lookup(0x1009) == (0x1000, 0, "a1")
    assert table.lookup(0x2010) is None and table.lookup(0xFFF) is None
    assert table.aliases(0x2000) == ["é", "b"] and table.aliases(0x3000) == []
    with pytest.raises(ValueError, match="finished"):
        table.add(1, 1, "late", 0)
    fresh = SymbolTable()
    fresh.add(0x10, 4, "x", 0)
    with pytest.raises(ValueError, match="not finished"):
        fresh.lookup(0x10)
    fresh.finish()
    assert len(fresh) == 1 and fresh.lookup(0x13) == (0x10, 4, "x")
