"""ELF files for the symbolizer: build-ids, sections (decompressed), the debug file to
read (build-id dir, .gnu_debuglink in gdb's order, MiniDebugInfo) and the symbol table.

pyelftools reads and checks the ELF header; the section headers are read here in one
pass, and the section bytes mapped or decompressed, because pyelftools knows neither zstd
nor the separate-debug-file search.
"""

from __future__ import annotations

import io
import mmap
import os
import struct
import zlib
from pathlib import Path

from memtrace_core.elf_tables import SHT_NOTE, ElfHeader, parse_header, section_rows

from ._symtab import SymbolTable

TYPE_CHECKING = False  # not typing's: the exit-time naming path stays light (issue 14)
if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

DEBUG_ROOT = Path("/usr/lib/debug")
SHF_COMPRESSED = 0x800
SHT_NOBITS = 8
ELFCOMPRESS_ZLIB = 1
ELFCOMPRESS_ZSTD = 2


class ElfError(Exception):
    """Not an ELF file we can read."""


def _open_elf(f) -> ELFFile:
    """pyelftools' view of an open file, loaded on first use: build-ids (read here without
    it) and names from the persistent cache need none, and importing it costs ~30 ms, paid
    by every `run --native` when it names the finished capture."""
    from elftools.elf.elffile import ELFFile

    return ELFFile(f)


def read_build_id(path: str | os.PathLike) -> str | None:
    """The NT_GNU_BUILD_ID of a file as lowercase hex, read from its program headers."""
    with open(path, "rb") as f:
        hdr = parse_header(f.read(64))
        if hdr is None:
            raise ElfError(f"{path}: not an ELF file")
        is64, end, phentsize, phnum = hdr.is64, hdr.end, hdr.phentsize, hdr.phnum
        f.seek(hdr.phoff)
        ph = f.read(phentsize * phnum)
        notes = []
        for i in range(min(phnum, len(ph) // max(phentsize, 1))):
            if is64:
                p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
                    end + "IIQQQQ", ph, i * phentsize)
            else:
                p_type, p_offset, _, _, p_filesz = struct.unpack_from(
                    end + "IIIII", ph, i * phentsize)
            if p_type == 4:  # PT_NOTE
                notes.append((p_offset, p_filesz))
        if not notes:  # debug files: notes only as sections
            return _build_id_from_sections(f, hdr)
        for off, size in notes:
            f.seek(off)
            bid = _scan_notes(f.read(min(size, 1 << 16)), end)
            if bid:
                return bid
    return None


def _scan_notes(data: bytes, end: str) -> str | None:
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(end + "III", data, pos)
        pos += 12
        name = data[pos:pos + namesz]
        pos += (namesz + 3) & ~3
        desc = data[pos:pos + descsz]
        pos += (descsz + 3) & ~3
        if ntype == 3 and name.rstrip(b"\0") == b"GNU":
            return desc.hex()
    return None


def _build_id_from_sections(f, hdr: ElfHeader) -> str | None:
    """The build-id of a file whose notes are only sections (debug files; libraries built
    without one show none here either): every SHT_NOTE section's notes."""
    if not hdr.shoff or not hdr.shnum:
        return None
    f.seek(hdr.shoff)
    for row in section_rows(f.read(hdr.shentsize * hdr.shnum), hdr):
        if row.type != SHT_NOTE:
            continue
        f.seek(row.offset)
        bid = _scan_notes(f.read(min(row.size, 1 << 16)), hdr.end)
        if bid:
            return bid
    return None


def gnu_debuglink_crc(path: str | os.PathLike) -> int:
    """The CRC32 gdb checks a .gnu_debuglink target against."""
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc & 0xFFFFFFFF


def _zstd_decompress(data: bytes, size: int) -> bytes:
    """A zstd-compressed section (zstandard is one of memtrace's dependencies)."""
    import zstandard

    try:
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    except zstandard.ZstdError:
        raise ElfError("zstd: corrupt section") from None


class Section:
    """One section header: what the symbolizer reads of it."""

    __slots__ = ("name", "type", "flags", "offset", "size", "link")

    def __init__(self, name: str, type: int, flags: int, offset: int, size: int,
                 link: int) -> None:
        self.name, self.type, self.flags = name, type, flags
        self.offset, self.size, self.link = offset, size, link


def _read_sections(elf: ELFFile, buf) -> list[Section]:
    """Every section header of `elf` (pyelftools read and checked the ELF header), read
    from the mapped file in one pass: pyelftools' own section objects cost ~10 ms a file
    (it parses hash tables, string tables and notes as it makes them), which a first
    `run --native` of PyTorch paid for each of its ~60 objects at exit."""
    n = elf.num_sections()
    if n == 0:
        return []
    hdr = parse_header(bytes(buf[:64]))
    if hdr is None:
        raise ElfError("its ELF header is cut short")
    rows = section_rows(buf, hdr, n, at=hdr.shoff)  # whole entries only, none if too small
    if len(rows) != n:
        raise ElfError("its section headers lie past the end of the file")
    strndx = elf.get_shstrndx()
    names = b""
    if strndx < n:
        names = bytes(buf[rows[strndx].offset:rows[strndx].offset + rows[strndx].size])
    out = []
    for r in rows:
        z = names.find(b"\0", r.name)
        out.append(Section(names[r.name:z if z >= 0 else len(names)].decode("utf-8", "replace"),
                           r.type, r.flags, r.offset, r.size, r.link))
    return out


class ElfImage:
    """One opened ELF file (or the bytes of one): section bytes (mapped, decompressed) by
    name, and its function symbols."""

    def __init__(self, path: str | os.PathLike, data: bytes | None = None):
        """The file at `path`, or, given `data`, those bytes (`path` names them)."""
        self.path = str(path)
        self._f = None
        try:
            if data is None:
                self._f = open(self.path, "rb")
                self._buf = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ)
                elf = _open_elf(self._f)
            else:
                self._buf = data
                elf = _open_elf(io.BytesIO(data))
            self.is64, self.little = elf.elfclass == 64, elf.little_endian
            self.headers = _read_sections(elf, self._buf)
        except Exception as e:
            if self._f is not None:
                self._f.close()
            raise ElfError(f"{path}: not a readable ELF file ({e})") from e
        self.sections = {s.name: s for s in self.headers}

    def close(self) -> None:
        if self._f is not None:
            self._f.close()

    def has(self, name: str) -> bool:
        s = self.sections.get(name)
        return s is not None and s.type != SHT_NOBITS and s.size > 0

    def data_of(self, sec: Section) -> bytes | memoryview:
        """Section contents, decompressed if SHF_COMPRESSED (zlib or zstd)."""
        off, size = sec.offset, sec.size
        if sec.type == SHT_NOBITS or size == 0:
            return b""
        raw = memoryview(self._buf)[off:off + size]
        if sec.flags & SHF_COMPRESSED:
            end = "<" if self.little else ">"
            if self.is64:
                ch_type, _, ch_size, _ = struct.unpack_from(end + "IIQQ", raw, 0)
                body = bytes(raw[24:])
            else:
                ch_type, ch_size, _ = struct.unpack_from(end + "III", raw, 0)
                body = bytes(raw[12:])
            if ch_type == ELFCOMPRESS_ZLIB:
                return zlib.decompress(body)
            if ch_type == ELFCOMPRESS_ZSTD:
                return _zstd_decompress(body, ch_size)
            raise ElfError(f"{self.path}: unknown section compression {ch_type}")
        if sec.name.startswith(".zdebug") and bytes(raw[:4]) == b"ZLIB":
            return zlib.decompress(bytes(raw[12:]))
        return raw

    def section(self, name: str) -> bytes | memoryview:
        """Contents of a section by name (also the legacy .zdebug_ form), b"" if absent."""
        sec = self.sections.get(name)
        if sec is None and name.startswith(".debug"):
            sec = self.sections.get(".z" + name[1:])
        if sec is None:
            return b""
        return self.data_of(sec)

    def add_symbols(self, table: SymbolTable, tables=(".symtab", ".dynsym"),
                    rank_add: int = 0) -> SymbolTable:
        """Add the function symbols of the first of `tables` that has any to `table`
        (.symtab is a superset of .dynsym); the table, not yet finished. The entries are
        read in C (symbols/_symtab.pyx), the names left in place in the string table."""
        for secname in tables:
            sec = self.sections.get(secname)
            if sec is None or sec.type == SHT_NOBITS or not 0 <= sec.link < len(self.headers):
                continue
            strtab = self.headers[sec.link]
            if table.add_elf(self.data_of(sec), self.data_of(strtab), self.is64, self.little,
                             rank_add):
                break
        return table

    def symbols(self, tables=(".symtab", ".dynsym")) -> list[tuple[int, int, str, int]]:
        """Function symbols as (addr, size, name, rank), in the section's order."""
        return self.add_symbols(SymbolTable(), tables).entries()

    def debuglink(self) -> tuple[str, int] | None:
        data = self.section(".gnu_debuglink")
        if not data:
            return None
        data = bytes(data)
        z = data.find(b"\0")
        name = data[:z].decode("utf-8", "replace")
        crc_off = (z + 4) & ~3
        crc, = struct.unpack_from("<I", data, crc_off)
        return name, crc


def find_debug_file(path: str, build_id: str | None, image: ElfImage) -> str | None:
    """The separate debug file of a binary: by build-id, then .gnu_debuglink in gdb's
    order (beside the binary, its .debug/ folder, /usr/lib/debug/<its dir>/)."""
    if build_id and len(build_id) > 2:
        cand = DEBUG_ROOT / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"
        if cand.is_file():
            return str(cand)
    link = image.debuglink()
    if link:
        name, crc = link
        real = os.path.realpath(path)
        for d in {os.path.dirname(path), os.path.dirname(real)}:
            for cand_s in (os.path.join(d, name), os.path.join(d, ".debug", name),
                           str(DEBUG_ROOT) + os.path.join(d, name)):
                if (os.path.isfile(cand_s) and os.path.realpath(cand_s) != real
                        and gnu_debuglink_crc(cand_s) == crc):
                    return cand_s
    return None


def find_alt_file(debug_path: str, image: ElfImage) -> str | None:
    """dwz's common debug file named by .gnu_debugaltlink (path, else by its build-id)."""
    data = image.section(".gnu_debugaltlink")
    if not data:
        return None
    data = bytes(data)
    z = data.find(b"\0")
    if z < 0:
        return None
    name = data[:z].decode("utf-8", "replace")
    want = data[z + 1:].hex()
    cands = [os.path.join(os.path.dirname(debug_path), name)]
    if want:
        cands.append(str(DEBUG_ROOT / ".build-id" / want[:2] / f"{want[2:]}.debug"))
    for cand in cands:
        try:
            if os.path.isfile(cand) and (not want or read_build_id(cand) == want):
                return cand
        except (OSError, ElfError):
            continue
    return None


def minidebuginfo_symbols(image: ElfImage, into: SymbolTable | None = None) -> SymbolTable:
    """Function symbols from MiniDebugInfo (.gnu_debugdata: an xz-compressed ELF), added
    to `into` (a new table when None); the table, not yet finished."""
    table = SymbolTable() if into is None else into
    data = image.section(".gnu_debugdata")
    if not data:
        return table
    import lzma

    try:
        inner = ElfImage(image.path + "[.gnu_debugdata]", lzma.decompress(bytes(data)))
    except (lzma.LZMAError, ElfError):
        return table
    return inner.add_symbols(table)
