"""An ELF file's header and its section header table, read with struct: the one reader of
them for the symbolizer (build-ids, sections) and the attach injector (.dynsym), which need
no more and must not pay for pyelftools' import (~30 ms) or its section objects (~10 ms a
file) on their fast paths."""

from __future__ import annotations

import struct
from collections import namedtuple

ELF_MAGIC = b"\x7fELF"
SHT_NOTE = 7
SHT_DYNSYM = 11
SHT_GNU_VERSYM = 0x6FFFFFFF


# namedtuples from collections, not typing's: the exit-time naming path imports no typing
_ElfHeaderBase = namedtuple("_ElfHeaderBase", "is64 little phoff phentsize phnum shoff "
                            "shentsize shnum shstrndx")


class ElfHeader(_ElfHeaderBase):
    """The fields of the ELF header that locate the two header tables: is64, little, then
    e_phoff, e_phentsize, e_phnum, e_shoff, e_shentsize, e_shnum, e_shstrndx."""

    __slots__ = ()

    @property
    def end(self) -> str:
        """struct's byte-order prefix."""
        return "<" if self.little else ">"


SectionRow = namedtuple("SectionRow", "name type flags addr offset size link info addralign "
                        "entsize")
SectionRow.__doc__ = """One section header, the same fields for both classes (Elf32_Shdr,
Elf64_Shdr); `name` is the offset of the name in the section name table."""


def parse_header(head: bytes) -> ElfHeader | None:
    """The header at the start of `head` (64 bytes cover either class); None when it is
    not an ELF header or is cut short."""
    if len(head) < 52 or head[:4] != ELF_MAGIC or head[4] not in (1, 2):
        return None
    is64, little = head[4] == 2, head[5] == 1
    end = "<" if little else ">"
    if is64:
        if len(head) < 64:
            return None
        phoff, shoff = struct.unpack_from(end + "QQ", head, 32)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(end + "HHHHH",
                                                                          head, 54)
    else:
        phoff, shoff = struct.unpack_from(end + "II", head, 28)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(end + "HHHHH",
                                                                          head, 42)
    return ElfHeader(is64, little, phoff, phentsize, phnum, shoff, shentsize, shnum, shstrndx)


def _section_format(header: ElfHeader) -> str:
    """struct format of one section header of this file's class and byte order."""
    return header.end + ("IIQQQQIIQQ" if header.is64 else "IIIIIIIIII")


def section_rows(table, header: ElfHeader, count: int | None = None,
                 at: int = 0) -> list[SectionRow]:
    """The section headers in `table` (bytes or a buffer) from offset `at`: `count` of them
    (the header's shnum by default), or as many as lie whole in it. An entry size smaller
    than a section header reads none."""
    fmt = _section_format(header)
    entsize = header.shentsize
    if entsize < struct.calcsize(fmt):
        return []
    n = header.shnum if count is None else count
    n = max(0, min(n, (len(table) - at) // entsize))
    return [SectionRow._make(struct.unpack_from(fmt, table, at + i * entsize))
            for i in range(n)]
