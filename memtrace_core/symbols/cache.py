"""Persistent symbol cache: one msgpack file per build-id under
$XDG_CACHE_HOME/memtrace/symbols (default ~/.cache/memtrace), mapping a file vaddr to
its frames. Writers merge with what is on disk and write a temp file then rename, so
concurrent writers never leave a torn file; a corrupt file is ignored and rebuilt.

Version 2 stores each address's frames as msgpack bytes of their own (a map of vaddr to
bin), decoded only when that address is asked for: a file holds every address ever named
in its library (libpython's grows to thousands), and `run --native` names a few hundred at
exit. Decoding a whole version-1 file (nested lists for every address) cost ~3 ms for
libpython's alone on every such exit; reading version 2's map of bytes is a tenth of that.
A version-1 file is still read when its library has no version-2 file yet (its answers
move to version 2 at the next write)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import msgpack

from memtrace_core.atomic_file import atomic_replace
from memtrace_core.demangle import demangle
from memtrace_core.frames import Frame, FrameKind

VERSION = 2
_OLD_VERSION = 1  # values are the packed frames themselves
# cached answers are final: "no symbol" (code 3, also what older caches hold for it)
_KIND_CODE = {FrameKind.PYTHON: 0, FrameKind.NATIVE: 1, FrameKind.INLINE: 2,
              FrameKind.NO_SYMBOL: 3, FrameKind.UNRESOLVED: 3}
_CODE_KIND = {0: FrameKind.PYTHON, 1: FrameKind.NATIVE, 2: FrameKind.INLINE,
              3: FrameKind.NO_SYMBOL}
_SAFE_ID = re.compile(r"^[0-9a-f]{2,128}$")

Packed = list  # [[function, file, line, kind_code], ...] innermost first


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "memtrace"


def pack_frames(frames: list[Frame]) -> Packed:
    return [[f.function, f.file, f.line, _KIND_CODE[f.kind]] for f in frames]


def unpack_frames(packed: Packed, module: str) -> list[Frame]:
    # demangled again: entries an older memtrace cached keep Rust names it left mangled
    return [Frame(demangle(fn), file, line, _CODE_KIND[k], module=module)
            for fn, file, line, k in packed]


class SymbolCache:
    """(build_id, vaddr) -> packed frames, loaded per build-id on first use (each address's
    frames decoded when it is first asked for)."""

    def __init__(self, cache_dir: Path | None = None):
        self.dir = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "symbols"
        # values: bytes as read (version 2), decoded lists (asked for, new, or version 1)
        self._tables: dict[str, dict[int, bytes | Packed]] = {}
        self._dirty: dict[str, dict[int, Packed]] = {}
        self._old: set[str] = set()  # read from a version-1 file: rewritten at flush

    def _file(self, build_id: str, version: int = VERSION) -> Path:
        return self.dir / f"{build_id}.v{version}.msgpack"

    def _read(self, build_id: str) -> dict[int, bytes | Packed]:
        table = self._read_file(self._file(build_id))
        if table is None:
            table = self._read_file(self._file(build_id, _OLD_VERSION))
            if table:
                self._old.add(build_id)
        return table if table is not None else {}

    @staticmethod
    def _read_file(path: Path) -> dict | None:
        """The file's map; None when there is none, {} when it is corrupt (rebuilt on the
        next flush)."""
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            table = msgpack.unpackb(data, strict_map_key=False)
        except (ValueError, msgpack.UnpackException, TypeError):
            return {}
        return table if isinstance(table, dict) else {}

    def get_many(self, build_id: str | None, vaddrs) -> dict[int, Packed]:
        """The packed frames of each address the cache holds for build_id: one look at the
        id and the table for all of them (the exit-time naming of a pandas run asks for
        11,600 addresses)."""
        table = self._table(build_id)
        if table is None:
            return {}
        found = {}
        for vaddr in vaddrs:
            got = self._entry(table, vaddr)
            if got is not None:
                found[vaddr] = got
        return found

    def _table(self, build_id: str | None) -> dict | None:
        if not build_id or not _SAFE_ID.match(build_id):
            return None
        table = self._tables.get(build_id)
        if table is None:
            table = self._tables[build_id] = self._read(build_id)
        return table

    @staticmethod
    def _entry(table: dict, vaddr: int) -> Packed | None:
        got = table.get(vaddr)
        if isinstance(got, bytes):
            try:
                got = msgpack.unpackb(got)
            except (ValueError, msgpack.UnpackException, TypeError):
                got = None
            if isinstance(got, list):
                table[vaddr] = got
        if got is not None and not isinstance(got, list):
            return None  # a damaged entry: resolved again
        return got

    def put(self, build_id: str | None, vaddr: int, packed: Packed) -> None:
        if not build_id or not _SAFE_ID.match(build_id):
            return
        self._tables.setdefault(build_id, {})[vaddr] = packed
        self._dirty.setdefault(build_id, {})[vaddr] = packed

    def flush(self) -> None:
        """Merge new entries into the files on disk (memtrace_core/atomic_file.py)."""
        if not self._dirty and not self._old:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            self._dirty.clear()
            self._old.clear()
            return
        for build_id in [*self._dirty, *(self._old - set(self._dirty))]:
            merged = self._read(build_id)
            merged.update(self._dirty.get(build_id, {}))
            entries = {vaddr: packed if isinstance(packed, bytes) else msgpack.packb(packed)
                       for vaddr, packed in merged.items() if isinstance(vaddr, int)}
            try:
                with atomic_replace(str(self._file(build_id)), prefix=f".{build_id}.",
                                    durable=False) as f:
                    f.write(msgpack.packb(entries))
            except OSError:
                pass  # a cache that cannot be written is only slower next time
        self._dirty.clear()
        self._old.clear()
