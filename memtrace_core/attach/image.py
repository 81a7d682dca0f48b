"""What the injector needs to know of the target's memory, read before any thread is stopped:
its mapped objects (from /proc/PID/maps), where `dlopen`, `dlsym` and `dlerror` are (from
the target's own ELF symbol tables, read through /proc/PID/root so a target in a container
is read as it sees its files), and a `syscall` instruction to run the first remote `mmap`.

Covers glibc >= 2.34 (the dl functions in libc), older glibc (in libdl, or libc's private
`__libc_dlopen_mode` when libdl is not loaded) and says so in one line elsewhere (musl's
dlopen is in libc too, under the same names).
"""

from __future__ import annotations

import bisect
import os
import re
import struct
from dataclasses import dataclass, field

from memtrace_core.elf_tables import (
    SHT_DYNSYM,
    SHT_GNU_VERSYM,
    ElfHeader,
    parse_header,
    section_rows,
)
from memtrace_core.errors import UserError

_MAPS_LINE = re.compile(
    r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) \S+ \d+\s*(.*)$"
)
_LIBC = re.compile(r"/libc(?:-[\d.]+)?\.so(?:\.\d+)?$|/ld-musl-[^/]+\.so\.\d+$")
_LIBDL = re.compile(r"/libdl(?:-[\d.]+)?\.so(?:\.\d+)?$")
SHN_UNDEF = 0
STT_FUNC = 2
STT_GNU_IFUNC = 10
VERSYM_HIDDEN = 0x8000


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str
    offset: int
    path: str


@dataclass
class ProcessImage:
    """The target's mappings, with a lookup from an address to its object."""

    pid: int
    mappings: list[Mapping]
    _starts: list[int] = field(default_factory=list, repr=False)
    _biases: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.mappings.sort(key=lambda m: m.start)
        self._starts = [m.start for m in self.mappings]

    def mapping_at(self, address: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self.mappings[i].end:
            return self.mappings[i]
        return None

    def objects(self) -> list[str]:
        """Paths of the mapped files, in address order, each once."""
        seen: dict[str, None] = {}
        for m in self.mappings:
            if m.path.startswith("/"):
                seen.setdefault(m.path, None)
        return list(seen)

    def load_bias(self, path: str) -> int:
        """Address where the object's vaddr 0 lies (the lowest mapping of file offset 0)."""
        if path in self._biases:
            return self._biases[path]
        starts = [m.start for m in self.mappings if m.path == path and m.offset == 0]
        if not starts:
            raise UserError(f"{path} is not mapped in process {self.pid}")
        bias = min(starts) - _first_load_vaddr(self.file(path))
        self._biases[path] = bias
        return bias

    def file(self, path: str) -> str:
        """The object's file as the target sees it (its root may differ from ours)."""
        return f"/proc/{self.pid}/root{path}"


def read_image(pid: int) -> ProcessImage:
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        raise UserError(f"process {pid} exited") from None
    mappings = []
    for line in text.splitlines():
        match = _MAPS_LINE.match(line)
        if match is None:
            continue
        start, end, perms, offset, path = match.groups()
        if path.endswith(" (deleted)"):
            path = path[: -len(" (deleted)")]
        mappings.append(Mapping(int(start, 16), int(end, 16), perms, int(offset, 16), path))
    return ProcessImage(pid, mappings)


# -- ELF: program headers and the dynamic symbol table, read from the file ---------------

def _read_header(f) -> ElfHeader:
    """The header of a 64-bit little-endian ELF file (the only kind we inject into)."""
    hdr = parse_header(f.read(64))
    if hdr is None or not hdr.is64 or not hdr.little:
        raise UserError(f"{f.name}: not a 64-bit little-endian ELF file")
    return hdr


def _load_segments(path: str) -> list[tuple[int, int, int]]:
    """(p_vaddr, p_offset, p_filesz) of each PT_LOAD."""
    with open(path, "rb") as f:
        hdr = _read_header(f)
        phoff, phnum, phentsize = hdr.phoff, hdr.phnum, hdr.phentsize
        f.seek(phoff)
        data = f.read(phnum * phentsize)
    out = []
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, i * phentsize)
        if p_type == 1:
            out.append((p_vaddr, p_offset, p_filesz))
    return out


def _first_load_vaddr(path: str) -> int:
    for vaddr, offset, _ in _load_segments(path):
        if offset == 0:
            return vaddr & ~0xFFF
    return 0


def vaddr_to_offset(path: str, vaddr: int) -> int | None:
    for seg_vaddr, offset, filesz in _load_segments(path):
        if seg_vaddr <= vaddr < seg_vaddr + filesz:
            return offset + vaddr - seg_vaddr
    return None


_DYNSYM_CACHE: dict[tuple[str, int, int, int], dict[str, tuple[int, int]]] = {}


def dynamic_symbols(path: str) -> dict[str, tuple[int, int]]:
    """Defined function symbols of .dynsym: name -> (vaddr, size), the default version
    (`name@@V`) winning over hidden compat versions (`name@V`). Cached per file identity."""
    st = os.stat(path)
    key = (path, st.st_dev, st.st_ino, st.st_mtime_ns)
    cached = _DYNSYM_CACHE.get(key)
    if cached is not None:
        return cached
    with open(path, "rb") as f:
        hdr = _read_header(f)
        f.seek(hdr.shoff)
        sections = section_rows(f.read(hdr.shnum * hdr.shentsize), hdr)

        def body(index: int) -> bytes:
            if not 0 <= index < len(sections):
                return b""
            f.seek(sections[index].offset)
            return f.read(sections[index].size)

        dynsym = next((i for i, s in enumerate(sections) if s.type == SHT_DYNSYM), None)
        if dynsym is None:
            raise UserError(f"{path} has no dynamic symbol table")
        versym = next((i for i, s in enumerate(sections) if s.type == SHT_GNU_VERSYM), None)
        syms = body(dynsym)
        strs = body(sections[dynsym].link)
        versions = body(versym) if versym is not None else b""
    out: dict[str, tuple[int, int]] = {}
    hidden: dict[str, tuple[int, int]] = {}
    for i in range(len(syms) // 24):
        name_off, info, _other, shndx, value, size = struct.unpack_from("<IBBHQQ", syms, i * 24)
        if shndx == SHN_UNDEF or (info & 0xF) not in (STT_FUNC, STT_GNU_IFUNC):
            continue
        end = strs.find(b"\0", name_off)
        name = strs[name_off:end].decode("utf-8", "replace")
        is_hidden = bool(versions) and 2 * i + 2 <= len(versions) and bool(
            struct.unpack_from("<H", versions, 2 * i)[0] & VERSYM_HIDDEN)
        (hidden if is_hidden else out).setdefault(name, (value, size))
    for name, entry in hidden.items():
        out.setdefault(name, entry)
    _DYNSYM_CACHE[key] = out
    return out


@dataclass(frozen=True)
class LoaderFunctions:
    """Absolute addresses in the target."""

    dlopen: int
    dlsym: int
    dlerror: int  # 0 when unavailable (older glibc's private entry points)
    syscall_insn: int


def find_loader_functions(image: ProcessImage) -> LoaderFunctions:
    """dlopen/dlsym/dlerror and a `syscall` instruction, or a one-line UserError."""
    objects = image.objects()
    libc = next((p for p in objects if _LIBC.search(p)), None)
    if libc is None:
        raise UserError(f"process {image.pid} has no C library mapped that memtrace knows "
                        f"(glibc or musl); cannot inject")
    libc_file = image.file(libc)
    libc_syms = dynamic_symbols(libc_file)
    libc_bias = image.load_bias(libc)

    syscall_insn = _find_syscall_insn(libc_file, libc_syms, libc_bias)
    if "dlopen" in libc_syms and "dlsym" in libc_syms:  # glibc >= 2.34, musl
        return LoaderFunctions(
            libc_bias + libc_syms["dlopen"][0], libc_bias + libc_syms["dlsym"][0],
            libc_bias + libc_syms["dlerror"][0] if "dlerror" in libc_syms else 0, syscall_insn)
    libdl = next((p for p in objects if _LIBDL.search(p)), None)
    if libdl is not None:
        dl_syms = dynamic_symbols(image.file(libdl))
        bias = image.load_bias(libdl)
        if "dlopen" in dl_syms and "dlsym" in dl_syms:
            return LoaderFunctions(
                bias + dl_syms["dlopen"][0], bias + dl_syms["dlsym"][0],
                bias + dl_syms["dlerror"][0] if "dlerror" in dl_syms else 0, syscall_insn)
    if "__libc_dlopen_mode" in libc_syms and "__libc_dlsym" in libc_syms:  # glibc < 2.34
        return LoaderFunctions(libc_bias + libc_syms["__libc_dlopen_mode"][0],
                               libc_bias + libc_syms["__libc_dlsym"][0], 0, syscall_insn)
    raise UserError(f"process {image.pid}: neither its C library ({libc}) nor libdl exports "
                    f"dlopen; cannot inject")


def _find_syscall_insn(path: str, syms: dict[str, tuple[int, int]], bias: int) -> int:
    """The address of the bytes 0f 05 (`syscall`) inside libc's syscall() function."""
    for name in ("syscall", "__syscall"):
        if name not in syms:
            continue
        vaddr, size = syms[name]
        offset = vaddr_to_offset(path, vaddr)
        if offset is None:
            continue
        with open(path, "rb") as f:
            f.seek(offset)
            code = f.read(max(size, 64))
        at = code.find(b"\x0f\x05")
        if at >= 0:
            return bias + vaddr + at
    raise UserError(f"cannot find a system call instruction in {path}")
