"""The one struct reader of ELF headers and section header tables (memtrace_core/elf_tables)
against pyelftools on real files of both classes (system libraries, a 64-bit and an x32
object built by gcc) and on big-endian files of both classes made here, since this machine
builds none; and what it reads of headers and tables that are cut short or lie."""

from __future__ import annotations

import ctypes.util
import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from memtrace_core.elf_tables import parse_header, section_rows


def _check(data: bytes) -> int:
    """parse_header and section_rows read what pyelftools reads; returns the rows read."""
    elf = ELFFile(io.BytesIO(data))
    hdr = parse_header(data[:64])
    assert hdr is not None
    assert (hdr.is64, hdr.little) == (elf.elfclass == 64, elf.little_endian)
    assert (hdr.phoff, hdr.phentsize, hdr.phnum, hdr.shoff, hdr.shentsize, hdr.shnum,
            hdr.shstrndx) == (elf["e_phoff"], elf["e_phentsize"], elf["e_phnum"],
                              elf["e_shoff"], elf["e_shentsize"], elf["e_shnum"],
                              elf["e_shstrndx"])
    rows = section_rows(data, hdr, at=hdr.shoff)
    ref = list(elf.iter_sections())
    assert len(rows) == len(ref) == elf.num_sections()
    for row, sec in zip(rows, ref, strict=True):
        h = sec.header
        assert (row.name, row.flags, row.addr, row.offset, row.size, row.link, row.info,
                row.addralign, row.entsize) == (
            h["sh_name"], h["sh_flags"], h["sh_addr"], h["sh_offset"], h["sh_size"],
            h["sh_link"], h["sh_info"], h["sh_addralign"], h["sh_entsize"]), sec.name
    names = {sec.name: row.type for row, sec in zip(rows, ref, strict=True)}
    if ".shstrtab" in names:
        assert names[".shstrtab"] == 3  # SHT_STRTAB
    return len(rows)


def _big_endian_elf(is64: bool) -> bytes:
    """A small big-endian ELF of either class, its section headers after its sections."""
    end = ">"
    strtab = b"\0.shstrtab\0.text\0.note.gnu.build-id\0"
    text = bytes(range(16))
    note = struct.pack(end + "III", 4, 4, 3) + b"GNU\0" + b"\xde\xad\xbe\xef"
    ehsize, shentsize = (64, 64) if is64 else (52, 40)
    off_str = ehsize
    off_text = off_str + len(strtab)
    off_note = off_text + len(text)
    shoff = (off_note + len(note) + 7) & ~7
    # name, type, flags, addr, offset, size, link, info, addralign, entsize
    sections = [
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (1, 3, 0, 0, off_str, len(strtab), 0, 0, 1, 0),
        (11, 1, 6, 0x1000, off_text, len(text), 0, 0, 4, 0),
        (17, 7, 2, 0x1010, off_note, len(note), 0, 0, 4, 0),
    ]
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 2, 1]) + bytes(9)
    if is64:
        head = ident + struct.pack(end + "HHIQQQIHHHHHH", 1, 43, 1, 0, 0, shoff, 0, ehsize,
                                   0, 0, shentsize, len(sections), 1)
        fmt = end + "IIQQQQIIQQ"
    else:
        head = ident + struct.pack(end + "HHIIIIIHHHHHH", 1, 2, 1, 0, 0, shoff, 0, ehsize,
                                   0, 0, shentsize, len(sections), 1)
        fmt = end + "IIIIIIIIII"
    assert len(head) == ehsize
    body = head + strtab + text + note
    body += bytes(shoff - len(body))
    return body + b"".join(struct.pack(fmt, *s) for s in sections)


def test_system_libraries_read_as_pyelftools_reads_them(libpython):
    libs = [libpython]
    for name in ("c", "m"):
        found = ctypes.util.find_library(name)
        for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64",
                  "/usr/lib/aarch64-linux-gnu"):
            if found and (Path(d) / found).exists():
                libs.append(Path(d) / found)
                break
    assert len(libs) >= 2
    for lib in libs:
        assert _check(lib.read_bytes()) > 10, lib


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_objects_of_both_classes_built_by_gcc(tmp_path):
    src = tmp_path / "f.c"
    src.write_text("int f(int x) { return x * 3; }\nint g = 5;\n")
    checked = 0
    for flag, bits in (("-m64", 64), ("-mx32", 32)):
        obj = tmp_path / f"f{bits}.o"
        if subprocess.run(["gcc", flag, "-c", str(src), "-o", str(obj)],
                          capture_output=True).returncode != 0:
            continue  # this gcc cannot make that class here
        data = obj.read_bytes()
        assert parse_header(data[:64]).is64 == (bits == 64)
        assert _check(data) >= 5
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize("is64", [True, False], ids=["elf64", "elf32"])
def test_big_endian_files_read_as_pyelftools_reads_them(is64):
    data = _big_endian_elf(is64)
    assert _check(data) == 4
    hdr = parse_header(data[:64])
    assert not hdr.little and hdr.end == ">"
    rows = section_rows(data, hdr, at=hdr.shoff)
    assert [r.type for r in rows] == [0, 3, 1, 7]
    assert (rows[2].addr, rows[2].size, rows[3].addr) == (0x1000, 16, 0x1010)


def test_not_an_elf_or_a_cut_header_reads_none():
    data = _big_endian_elf(True)
    assert parse_header(b"") is None
    assert parse_header(b"\x7fELG" + data[4:64]) is None
    assert parse_header(data[:4] + b"\x03" + data[5:64]) is None  # no such class
    assert parse_header(data[:60]) is None  # a 64-bit header needs 64 bytes
    small = _big_endian_elf(False)
    assert parse_header(small[:52]) is not None and parse_header(small[:51]) is None


def test_cut_or_lying_tables_read_only_whole_entries():
    data = _big_endian_elf(True)
    hdr = parse_header(data[:64])
    # the table cut in its third entry: two whole ones
    assert len(section_rows(data[:hdr.shoff + 2 * 64 + 10], hdr, at=hdr.shoff)) == 2
    # a count beyond the file: what is there
    assert len(section_rows(data, hdr._replace(shnum=60000), at=hdr.shoff)) == 4
    # an explicit count wins over the header's
    assert len(section_rows(data, hdr, count=1, at=hdr.shoff)) == 1
    # an entry size too small to hold a section header: none
    assert section_rows(data, hdr._replace(shentsize=16), at=hdr.shoff) == []
    # a table offset past the end: none
    assert section_rows(data, hdr, at=len(data) + 100) == []
