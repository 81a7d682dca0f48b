"""(module path, build-id, vaddr) -> frames, innermost first: DWARF with inlined
functions, else the symbol table, else `basename+0xoff`; stale libraries detected."""

from __future__ import annotations

import os
import weakref
from pathlib import Path

from ..frames import Frame, FrameKind
from .cache import SymbolCache, pack_frames, unpack_frames
from .elf import (
    ElfError,
    ElfImage,
    SymbolTable,
    find_alt_file,
    find_debug_file,
    minidebuginfo_symbols,
    read_build_id,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .dwarf import DwarfModule

Key = tuple[str, "str | None", int]


class _Module:
    """Everything known about one module on disk: DWARF (lazy) and symbol table."""

    def __init__(self, path: str, build_id: str | None, time_box_s: float):
        self.path = path
        self.image = ElfImage(path)
        self.debug_path: str | None = None
        self.dwarf: DwarfModule | None = None
        self.error: str | None = None
        dbg = self.image if self.image.has(".debug_info") else None
        if dbg is None:
            found = find_debug_file(path, build_id, self.image)
            if found:
                try:
                    cand = ElfImage(found)
                    if cand.has(".debug_info") or cand.has(".zdebug_info"):
                        dbg = cand
                        self.debug_path = found
                except ElfError:
                    pass
        self._dbg_image = dbg
        self._time_box_s = time_box_s
        self._symtab: SymbolTable | None = None

    def dwarf_module(self) -> DwarfModule | None:
        if self.dwarf is None and self._dbg_image is not None and self.error is None:
            # imported here: an address the persistent cache answers (every one, at the
            # exit of a `run --native` of a program run before) needs no DWARF (issue 14)
            from .dwarf import DwarfModule

            try:
                alt = None
                alt_path = find_alt_file(self._dbg_image.path, self._dbg_image)
                if alt_path:
                    alt = DwarfModule(ElfImage(alt_path), self._time_box_s)
                self.dwarf = DwarfModule(self._dbg_image, self._time_box_s, alt=alt)
            except Exception as e:  # malformed DWARF: the symbol table still works
                self.error = f"{self.path}: unreadable DWARF ({e}); using the symbol table"
        return self.dwarf

    @property
    def symtab(self) -> SymbolTable:
        if self._symtab is None:
            table = SymbolTable()
            if ".symtab" in self.image.sections:
                self.image.add_symbols(table)
            elif self._dbg_image is not None and ".symtab" in self._dbg_image.sections:
                self._dbg_image.add_symbols(table)
            else:
                minidebuginfo_symbols(self.image, table)
                self.image.add_symbols(table)
            # exported names first among aliases (what elfutils prints)
            self.image.add_symbols(table, (".dynsym",), rank_add=3)
            table.finish()
            self._symtab = table
        return self._symtab


class Symbolizer:
    """Resolve native addresses to frames, caching in memory and on disk.

    resolve() expects file vaddrs (ModuleMap.lookup) of the instruction itself: for
    return addresses pass ip - 1.
    """

    def __init__(self, cache_dir: Path | None = None, time_box_s: float = 0.25,
                 persistent: bool = True):
        self._cache = SymbolCache(cache_dir) if persistent else None
        self._time_box_s = time_box_s
        self._modules: dict[tuple[str, str | None], _Module | None] = {}
        self._stale: dict[tuple[str, str | None], str] = {}  # (path, build_id) -> why
        self._on_disk: dict[tuple[str, str | None], str | None] = {}  # checked: its build-id
        self._memo: dict[Key, list[Frame]] = {}
        self._file_ids: dict[str, str | None] = {}  # path -> cache id of a build-id-less file
        self.notes: list[str] = []
        if self._cache is not None:
            weakref.finalize(self, self._cache.flush)

    # -- modules ---------------------------------------------------------------------
    def _current(self, path: str, build_id: str | None) -> bool:
        """The file on disk is the one the capture recorded (reads its build-id once)."""
        key = (path, build_id)
        if key in self._stale:
            return False
        if key in self._on_disk:
            return True
        try:
            on_disk = read_build_id(path)
        except (OSError, ElfError) as e:
            self._stale[key] = "gone" if not os.path.exists(path) else f"unreadable ({e})"
            return False
        if build_id and on_disk != build_id.lower():
            self._stale[key] = f"build-id now {on_disk}, recorded {build_id}"
            return False
        self._on_disk[key] = on_disk
        return True

    def _module(self, path: str, build_id: str | None) -> _Module | None:
        key = (path, build_id)
        if key in self._modules:
            return self._modules[key]
        mod = None
        if self._current(path, build_id):
            try:
                mod = _Module(path, build_id or self._on_disk[key], self._time_box_s)
            except (OSError, ElfError) as e:
                self.notes.append(f"{path}: {e}")
        self._modules[key] = mod
        return mod

    def stale_libraries(self) -> list[str]:
        """Paths whose file changed (other build-id) or vanished since the capture."""
        return sorted({path for path, _ in self._stale})

    # -- resolution ------------------------------------------------------------------
    def resolve(self, path: str, build_id: str | None, vaddr: int) -> list[Frame]:
        """Frames at vaddr in path, innermost first (inlined functions as INLINE)."""
        key = (path, build_id, vaddr)
        got = self._memo.get(key)
        if got is not None:
            return got
        got = self.cached(path, build_id, vaddr)  # no module opened for a cached answer
        if got is not None:
            return got
        mod = self._module(path, build_id)
        if mod is None:
            if (path, build_id) in self._stale:
                frames = [Frame(f"<library changed: {path}>", "", 0, FrameKind.NO_SYMBOL,
                                module=path)]
            else:
                frames = [self._unresolved(path, vaddr)]
            self._memo[key] = frames
            return frames
        frames, cacheable = self._compute(mod, path, vaddr)
        if cacheable and self._cache is not None:
            self._cache.put(self._cache_id(path, build_id), vaddr, pack_frames(frames))
        self._memo[key] = frames
        return frames

    def cached(self, path: str, build_id: str | None, vaddr: int) -> list[Frame] | None:
        """resolve() when the answer needs no DWARF (memory, the persistent cache, or a
        library changed since the capture), else None: what a UI may do on its own
        thread while the worker process reads DWARF."""
        key = (path, build_id, vaddr)
        got = self._memo.get(key)
        if got is not None:
            return got
        if not self._current(path, build_id):
            frames = [Frame(f"<library changed: {path}>", "", 0, FrameKind.NO_SYMBOL,
                            module=path)]
            self._memo[key] = frames
            return frames
        return self._from_cache(path, build_id, [vaddr]).get(vaddr)

    def resolve_module(self, path: str, build_id: str | None,
                       vaddrs) -> dict[int, list[Frame]]:
        """resolve() of many addresses of one module: what the persistent cache holds is
        taken in one pass (no per-address look at the module, the cache id, the table), the
        rest resolved one by one."""
        out: dict[int, list[Frame]] = {}
        memo = self._memo
        todo = []
        for vaddr in vaddrs:
            got = memo.get((path, build_id, vaddr))
            if got is not None:
                out[vaddr] = got
            else:
                todo.append(vaddr)
        if todo and self._current(path, build_id):
            out.update(self._from_cache(path, build_id, todo))
        for vaddr in todo:
            if vaddr not in out:
                out[vaddr] = self.resolve(path, build_id, vaddr)
        return out

    def _from_cache(self, path: str, build_id: str | None,
                    vaddrs) -> dict[int, list[Frame]]:
        """The persistent cache's answers for addresses of a module that is current, kept
        in memory too; an address it has no (readable) answer for is left out."""
        if self._cache is None:
            return {}
        out: dict[int, list[Frame]] = {}
        for vaddr, packed in self._cache.get_many(self._cache_id(path, build_id),
                                                  vaddrs).items():
            try:
                frames = unpack_frames(packed, path)
            except (ValueError, TypeError, KeyError):
                continue
            self._memo[(path, build_id, vaddr)] = out[vaddr] = frames
        return out

    def _cache_id(self, path: str, build_id: str | None) -> str | None:
        """What the persistent cache files a module's answers under: its build-id, or for a
        file without one (wheels' vendored libraries: numpy's OpenBLAS, whose symbol table
        takes ~0.1 s to read at every `run --native`) the file's identity on disk (device,
        inode, size, modification time, in hex): a rebuilt file is a new one."""
        if build_id:
            return build_id
        if path not in self._file_ids:
            try:
                st = os.stat(path)
            except OSError:
                self._file_ids[path] = None
            else:
                self._file_ids[path] = "".join(
                    f"{n & (2**64 - 1):016x}" for n in (st.st_dev, st.st_ino, st.st_size,
                                                        st.st_mtime_ns))
        return self._file_ids[path]

    def function_at(self, path: str, build_id: str | None, vaddr: int) -> str | None:
        """The symbol-table function holding vaddr (no DWARF), None when unknown."""
        mod = self._module(path, build_id)
        if mod is None:
            return None
        sym = mod.symtab.lookup(vaddr)
        return sym[2] if sym is not None else None

    def resolve_many(self, keys) -> dict[Key, list[Frame]]:
        """resolve() for many (path, build_id, vaddr) keys; the disk cache is updated."""
        out = {}
        for k in keys:
            k = (k[0], k[1], k[2])
            out[k] = self.resolve(*k)
        self.flush()
        return out

    def flush(self) -> None:
        if self._cache is not None:
            self._cache.flush()

    @staticmethod
    def _unresolved(path: str, vaddr: int) -> Frame:
        return Frame(f"{os.path.basename(path)}+0x{vaddr:x}", "", 0, FrameKind.NO_SYMBOL,
                     module=path)

    def _compute(self, mod: _Module, path: str, vaddr: int) -> tuple[list[Frame], bool]:
        from ..demangle import demangle

        raw = None
        cacheable = True
        dw = mod.dwarf_module()
        if mod.error and mod.error not in self.notes:
            self.notes.append(mod.error)
        if dw is not None:
            n_failed = len(dw.failed_units)
            try:
                raw = dw.resolve(vaddr)
            except Exception as e:  # malformed DWARF in some unit: the symbol table
                raw = None
                cacheable = False
                self.notes.append(f"{path}: unreadable DWARF at 0x{vaddr:x} ({e}); "
                                  "names from the symbol table")
            if len(dw.failed_units) > n_failed:
                cacheable = False
                for cu, why in list(dw.failed_units.items())[n_failed:]:
                    self.notes.append(f"{path}: compile unit 0x{cu:x} skipped ({why}); "
                                      "names from the symbol table")
        if raw:
            frames = []
            for name, file, line, inline in raw:
                if not name:
                    sym = mod.symtab.lookup(vaddr)
                    name = sym[2] if sym else f"{os.path.basename(path)}+0x{vaddr:x}"
                frames.append(Frame(demangle(name), file, line,
                                    FrameKind.INLINE if inline else FrameKind.NATIVE,
                                    module=path))
            return frames, cacheable
        sym = mod.symtab.lookup(vaddr)
        if sym is not None:
            return [Frame(demangle(sym[2]), "", 0, FrameKind.NATIVE, module=path)], cacheable
        return [self._unresolved(path, vaddr)], cacheable
