"""Fixtures: small gcc-built libraries (C with a forced-inline helper, C++ template
method) in DWARF 4/5, zlib- and zstd-compressed, stripped with debuglink, MiniDebugInfo."""

from __future__ import annotations

import lzma
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from tests.symbols.symbols_support import source_line  # noqa: F401 - re-exported for tests

C_SRC = r"""
#include <stdlib.h>
#include <string.h>
static inline __attribute__((always_inline)) void *helper_alloc(size_t n) {
    void *p = malloc(n);  /* HELPER_MALLOC */
    if (p) memset(p, 1, n);
    return p;
}
static inline __attribute__((always_inline)) void *twice_inlined(size_t n) {
    return helper_alloc(n + 3);  /* TWICE_CALL */
}
__attribute__((noinline)) void *leaf_alloc(size_t n) {
    return helper_alloc(n * 2);  /* LEAF_CALL */
}
__attribute__((noinline)) void *deep_alloc(size_t n) {
    void *p = twice_inlined(n);  /* DEEP_CALL */
    return p;
}
__attribute__((noinline)) void *middle(size_t n) {
    void *p = leaf_alloc(n);  /* MIDDLE_CALL */
    if (n > 100) free(deep_alloc(n));
    return p;
}
void *outer_entry(size_t n) { return middle(n + 1); }
int sum_to(int n) { int s = 0; for (int i = 0; i < n; i++) s += i * i % 7; return s; }
"""

CPP_SRC = r"""
#include <vector>
#include <map>
#include <string>
namespace geo {
template <typename T> class Grid {
  public:
    std::vector<T> cells;
    __attribute__((noinline)) void grow(int n) {
        for (int i = 0; i < n; ++i) cells.push_back(T(i));
    }
};
struct Index {
    std::map<std::string, int> m;
    __attribute__((noinline)) int add(const std::string &k) { return ++m[k]; }
};
}
extern "C" int cpp_entry(int n) {
    geo::Grid<double> g; g.grow(n);
    geo::Index ix; ix.add("a"); return (int)g.cells.size() + ix.add("a");
}
"""


def _gcc(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True)


def _objcopy_supports_zstd(tmp: Path, lib: Path) -> bool:
    out = tmp / "probe.so"
    r = subprocess.run(["objcopy", "--compress-debug-sections=zstd", str(lib), str(out)],
                       capture_output=True)
    return r.returncode == 0


@pytest.fixture(scope="session")
def libs(tmp_path_factory) -> dict[str, Path]:
    """name -> path of each built variant; 'src' is the C source file."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    d = tmp_path_factory.mktemp("symlibs")
    (d / "lib.c").write_text(C_SRC)
    (d / "lib.cpp").write_text(CPP_SRC)
    out: dict[str, Path] = {"src": d / "lib.c", "cppsrc": d / "lib.cpp"}
    base = ["gcc", "-g", "-O2", "-shared", "-fPIC"]
    for name, extra in (("dwarf4", ["-gdwarf-4"]), ("dwarf5", ["-gdwarf-5"]),
                        ("zlib", ["-gdwarf-5", "-gz=zlib"]),
                        ("dwarf4_zlib", ["-gdwarf-4", "-gz=zlib"])):
        p = d / f"lib_{name}.so"
        _gcc(*base, *extra, str(d / "lib.c"), "-o", str(p))
        out[name] = p
    for name, extra in (("cpp4", ["-gdwarf-4"]), ("cpp5", ["-gdwarf-5"])):
        p = d / f"lib_{name}.so"
        _gcc("g++", "-g", "-O2", "-shared", "-fPIC", *extra, str(d / "lib.cpp"), "-o", str(p))
        out[name] = p
    if _objcopy_supports_zstd(d, out["dwarf5"]):
        p = d / "lib_zstd.so"
        _gcc("objcopy", "--compress-debug-sections=zstd", str(out["dwarf5"]), str(p))
        out["zstd"] = p
    # clang's DWARF 5 uses the indexed forms gcc leaves out (strx1, addrx, rnglistx,
    # str_offsets/addr/rnglists bases) and emits no .debug_aranges
    if shutil.which("clang") and shutil.which("clang++"):
        for name, cc, src, extra in (("clang5", "clang", "lib.c", ["-gdwarf-5"]),
                                     ("clang4", "clang", "lib.c", ["-gdwarf-4"]),
                                     ("clangpp5", "clang++", "lib.cpp", ["-gdwarf-5"])):
            p = d / f"lib_{name}.so"
            _gcc(cc, "-g", "-O2", "-shared", "-fPIC", *extra, str(d / src), "-o", str(p))
            out[name] = p
    # dwz: partial units in one file, and a common file named by .gnu_debugaltlink
    if shutil.which("dwz"):
        one = d / "lib_dwz1.so"
        shutil.copy(out["cpp5"], one)
        _gcc("dwz", str(one))
        out["dwz1"] = one
        a, b = d / "lib_dwza.so", d / "lib_dwzb.so"
        shutil.copy(out["cpp5"], a)
        _gcc("g++", "-g", "-O2", "-shared", "-fPIC", "-DOTHER", str(d / "lib.cpp"), "-o", str(b))
        _gcc("dwz", "-m", str(d / "common.debug"), "-M", str(d / "common.debug"), str(a),
             str(b))
        out["dwz_multi"] = a
    # stripped library + separate debug file found through .gnu_debuglink in .debug/
    dl = d / "dl"
    (dl / ".debug").mkdir(parents=True)
    stripped = dl / "libdl.so"
    shutil.copy(out["dwarf5"], stripped)
    _gcc("objcopy", "--only-keep-debug", str(stripped), str(dl / ".debug" / "libdl.so.debug"))
    _gcc("strip", "--strip-all", str(stripped))
    _gcc("objcopy", "--add-gnu-debuglink=" + str(dl / ".debug" / "libdl.so.debug"),
         str(stripped))
    out["debuglink"] = stripped
    # MiniDebugInfo: stripped, with an xz-compressed ELF of function symbols
    mini = d / "mini"
    mini.mkdir()
    full = out["dwarf5"]
    funcs = subprocess.run(["nm", "--defined-only", str(full)], capture_output=True,
                           text=True, check=True).stdout.split("\n")
    keep = mini / "keep.txt"
    keep.write_text("\n".join(ln.split()[-1] for ln in funcs if ln[17:18] in ("t", "T")))
    small = mini / "symbols.elf"
    _gcc("objcopy", "--only-keep-debug", "--strip-debug", f"--keep-symbols={keep}",
         str(full), str(small))
    (mini / "symbols.elf.xz").write_bytes(lzma.compress(small.read_bytes()))
    mlib = mini / "libmini.so"
    shutil.copy(full, mlib)
    _gcc("strip", "--strip-all", str(mlib))
    _gcc("objcopy", f"--add-section=.gnu_debugdata={mini / 'symbols.elf.xz'}", str(mlib))
    out["minidebuginfo"] = mlib
    return out


@pytest.fixture(scope="session")
def libpython() -> Path:
    libdir = sysconfig.get_config_var("LIBDIR")
    ldlib = sysconfig.get_config_var("INSTSONAME") or "libpython3.11.so.1.0"
    p = Path(libdir) / ldlib
    if not p.exists():
        pytest.skip("no shared libpython")
    return p


