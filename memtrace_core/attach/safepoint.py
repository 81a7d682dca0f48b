"""Which thread of the target may run our calls: one not inside code that holds a lock those
calls need (`dlopen` takes the loader's lock and calls malloc; `pthread_create` too).

A thread is judged from its stack, unwound over ptrace while it is stopped: unsafe when a
frame lies in the dynamic loader, libunwind, memtrace's own tracer or helper, or in a
function whose name says allocator, loader, fork or unwinder (as the gdb method judges).
Threads blocked in a system call are tried first: their state is stable and they usually
hold no lock at all. Names come from each object's dynamic symbol table, and for the C
library also from its full symbol table when a debug file is installed (read before any
thread is stopped). A libc frame with no name is neither safe nor unsafe by itself: the
entry point that called it (malloc, dlopen, ...) is named and judged.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass

from memtrace_core.attach.image import ProcessImage, dynamic_symbols

UNSAFE_WORDS = (
    "malloc", "calloc", "realloc", "free", "memalign", "valloc", "_int_", "arena", "tcache",
    "dl_", "dlopen", "dlclose", "dlsym", "dlerror", "fork", "pthread_create", "unw_",
    "_Unwind", "mt_", "memtrace_",
)
# The interpreter's own allocator (pymalloc) takes no lock that dlopen/pthread_create need.
SAFE_PREFIXES = ("Py", "_Py", "pymalloc")
_UNSAFE_OBJECTS = re.compile(
    r"/ld-linux[^/]*\.so[^/]*$|/ld\.so[^/]*$|/ld-musl[^/]*$|/libunwind[^/]*\.so[^/]*$"
    r"|/memtrace_core/tracer/_tracer[^/]*\.so$|/memtrace_core/attach/_spawn[^/]*\.so$"
)
_LIBC = re.compile(r"/libc(?:-[\d.]+)?\.so(?:\.\d+)?$")


@dataclass(frozen=True)
class ThreadInfo:
    tid: int
    name: str
    syscall: int | None  # the system call it is blocked in; None when running in user code


def threads(pid: int) -> list[ThreadInfo]:
    """The target's threads, the preferred candidates first: blocked in a system call, then
    the main thread before the others."""
    out = []
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return []
    for tid in tids:
        base = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{base}/comm", encoding="utf-8", errors="replace") as f:
                name = f.read().strip()
            with open(f"{base}/syscall", encoding="ascii", errors="replace") as f:
                fields = f.read().split()
        except OSError:
            continue  # exited meanwhile
        nr: int | None = None
        if fields and fields[0] not in ("running", "-1"):
            try:
                nr = int(fields[0])
            except ValueError:
                nr = None
        out.append(ThreadInfo(tid, name, nr))
    return sorted(out, key=lambda t: (t.syscall is None, t.tid != pid, t.tid))


class _Names:
    """Function names of one object: sorted (start, end, name) of sized symbols."""

    def __init__(self, symbols: dict[str, tuple[int, int]] | list[tuple[int, int, str]]):
        if isinstance(symbols, dict):
            items = [(v, v + s, n) for n, (v, s) in symbols.items() if s > 0]
        else:
            items = [(v, v + s, n) for v, s, n in symbols if s > 0]
        items.sort()
        self.starts = [i[0] for i in items]
        self.items = items

    def name(self, vaddr: int) -> str | None:
        i = bisect.bisect_right(self.starts, vaddr) - 1
        while i >= 0:
            start, end, name = self.items[i]
            if start <= vaddr < end:
                return name
            if vaddr - start > 1 << 20:
                break
            i -= 1  # an earlier, larger symbol may still cover it
        return None


_NAMES_CACHE: dict[tuple[str, int, int], _Names] = {}


def _names_for(file: str, full: bool) -> _Names | None:
    try:
        st = os.stat(file)
    except OSError:
        return None
    key = (file, st.st_ino, st.st_mtime_ns)
    names = _NAMES_CACHE.get(key)
    if names is None:
        try:
            if full:
                names = _full_names(file)
            else:
                names = _Names(dynamic_symbols(file))
        except Exception:  # noqa: BLE001 - an unreadable object names nothing
            return None
        _NAMES_CACHE[key] = names
    return names


def _full_names(file: str) -> _Names:
    """The C library's full symbol table (its debug file when installed), so internal
    functions such as _int_malloc are named too."""
    from memtrace_core.symbols.elf import (
        ElfError,
        ElfImage,
        find_debug_file,
        read_build_id,
    )

    image = ElfImage(file)
    try:
        syms = [(a, s, n) for a, s, n, _ in image.symbols((".dynsym",))]
        tables = [image]
        try:
            debug = find_debug_file(file, read_build_id(file), image)
            if debug:
                tables.append(ElfImage(debug))
        except (OSError, ElfError):
            pass
        for table in tables:
            if ".symtab" in table.sections:
                syms += [(a, s, n) for a, s, n, _ in table.symbols((".symtab",))]
        return _Names(syms)
    finally:
        image.close()


class StackJudge:
    """Judges stopped threads' stacks against the target's mappings."""

    def __init__(self, image: ProcessImage) -> None:
        self.image = image
        for path in image.objects():  # the C library's names before anything is stopped
            if _LIBC.search(path):
                _names_for(image.file(path), full=True)

    def unsafe_frame(self, ips: list[int]) -> str | None:
        """A description of the first frame that makes the thread unsafe, or None."""
        for depth, ip in enumerate(ips):
            lookup = ip if depth == 0 else ip - 1  # return addresses point past the call
            mapping = self.image.mapping_at(lookup)
            if mapping is None or not mapping.path.startswith("/"):
                continue
            if _UNSAFE_OBJECTS.search(mapping.path):
                return f"{os.path.basename(mapping.path)}+{lookup - mapping.start:#x}"
            file = self.image.file(mapping.path)
            names = _names_for(file, full=bool(_LIBC.search(mapping.path)))
            if names is None:
                continue
            try:
                vaddr = lookup - self.image.load_bias(mapping.path)
            except Exception:  # noqa: BLE001 - unmapped meanwhile, unreadable
                continue
            name = names.name(vaddr)
            if name and is_unsafe_name(name):
                return name
        return None


def is_unsafe_name(name: str) -> bool:
    return not name.startswith(SAFE_PREFIXES) and any(w in name for w in UNSAFE_WORDS)
