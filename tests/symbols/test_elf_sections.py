"""ElfImage's section headers (read in one pass from the mapped file) against pyelftools'
own section objects, on every library variant the symbol tests build and on real system
libraries; and the errors for a file whose section headers are cut off or lie."""

from __future__ import annotations

import ctypes.util
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from memtrace_core.symbols.elf import SHF_COMPRESSED, ElfError, ElfImage

VARIANTS = ("dwarf4", "dwarf5", "zlib", "dwarf4_zlib", "cpp5", "zstd", "debuglink",
            "minidebuginfo")


def system_libraries(libpython: Path) -> list[Path]:
    found = [libpython]
    for name in ("c", "stdc++", "m"):
        lib = ctypes.util.find_library(name)
        if lib:
            for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64",
                      "/usr/lib64", "/usr/lib/aarch64-linux-gnu"):
                if (Path(d) / lib).exists():
                    found.append(Path(d) / lib)
                    break
    return found


def check_against_pyelftools(path: Path) -> int:
    """Every section's name, type, flags, place, size and link as pyelftools reads them,
    and its bytes (uncompressed sections); returns how many sections were compared."""
    image = ElfImage(path)
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            ref = list(elf.iter_sections())
            assert [s.name for s in image.headers] == [s.name for s in ref]
            for mine, theirs in zip(image.headers, ref, strict=True):
                h = theirs.header
                assert (mine.flags, mine.offset, mine.size, mine.link) == (
                    h["sh_flags"], h["sh_offset"], h["sh_size"], h["sh_link"]), mine.name
                assert (mine.type == 8) == (h["sh_type"] == "SHT_NOBITS"), mine.name
                if mine.type != 8 and not mine.flags & SHF_COMPRESSED and mine.size:
                    assert bytes(image.data_of(mine)) == theirs.data(), mine.name
            assert (image.is64, image.little) == (elf.elfclass == 64, elf.little_endian)
        return len(ref)
    finally:
        image.close()


@pytest.mark.parametrize("variant", VARIANTS)
def test_built_variants_match_pyelftools(libs, variant):
    if variant not in libs:
        pytest.skip(f"{variant} not built on this machine")
    assert check_against_pyelftools(libs[variant]) > 10


def test_separate_debug_file_matches_pyelftools(libs):
    """A debug file made by --only-keep-debug: its code sections are NOBITS."""
    debug = libs["debuglink"].parent / ".debug" / "libdl.so.debug"
    assert check_against_pyelftools(debug) > 10
    image = ElfImage(debug)
    assert image.sections[".text"].type == 8 and image.section(".text") == b""
    assert not image.has(".text") and image.has(".debug_info")


def test_system_libraries_match_pyelftools(libpython):
    libraries = system_libraries(libpython)
    assert len(libraries) >= 2  # libpython and the C library at least
    for lib in libraries:
        assert check_against_pyelftools(lib) > 10


def test_compressed_debug_sections_read_the_same(libs):
    """A zlib-compressed section decompresses to pyelftools' bytes, a zstd-compressed one
    (objcopy of the uncompressed build) to the uncompressed build's bytes."""
    packed = ElfImage(libs["zlib"])
    with open(libs["zlib"], "rb") as f:
        ref = ELFFile(f)
        compressed = [s for s in packed.headers if s.flags & SHF_COMPRESSED]
        assert {".debug_info", ".debug_line"} <= {s.name for s in compressed}
        for sec in compressed:
            assert bytes(packed.data_of(sec)) == ref.get_section_by_name(sec.name).data()
    if "zstd" not in libs:
        pytest.skip("objcopy here cannot compress with zstd")
    plain, zstd = ElfImage(libs["dwarf5"]), ElfImage(libs["zstd"])
    assert zstd.sections[".debug_info"].flags & SHF_COMPRESSED
    for name in (".debug_info", ".debug_line", ".debug_abbrev"):
        assert bytes(zstd.section(name)) == bytes(plain.section(name))


def test_minidebuginfo_symbols_are_read(libs):
    """The xz-compressed inner ELF of .gnu_debugdata is read from its bytes."""
    from memtrace_core.symbols.elf import minidebuginfo_symbols

    names = {n for _, _, n, _ in minidebuginfo_symbols(ElfImage(libs["minidebuginfo"])).entries()}
    full = {n for _, _, n, _ in ElfImage(libs["dwarf5"]).symbols((".symtab",))}
    assert names and names <= full
    assert "leaf_alloc" in names or len(names) >= 3


def _header_fields(data: bytes) -> tuple[int, int, int]:
    shoff, = struct.unpack_from("<Q", data, 40)
    shentsize, shnum = struct.unpack_from("<HH", data, 58)
    return shoff, shentsize, shnum


def test_cut_or_lying_section_headers_are_an_elf_error(libs, tmp_path):
    data = libs["dwarf5"].read_bytes()
    shoff, shentsize, shnum = _header_fields(data)
    bad = tmp_path / "bad.so"
    # cut in the middle of the section header table
    bad.write_bytes(data[:shoff + shentsize * (shnum // 2)])
    with pytest.raises(ElfError, match="section headers"):
        ElfImage(bad)
    # a count of section headers far beyond the file
    lying = bytearray(data)
    struct.pack_into("<H", lying, 60, 60000)
    bad.write_bytes(lying)
    with pytest.raises(ElfError, match="section headers"):
        ElfImage(bad)
    # an entry size too small to hold a section header
    small = bytearray(data)
    struct.pack_into("<H", small, 58, 16)
    bad.write_bytes(small)
    with pytest.raises(ElfError):
        ElfImage(bad)
    # not an ELF file at all
    bad.write_bytes(b"\0" * 4096)
    with pytest.raises(ElfError):
        ElfImage(bad)
