"""Persistent symbol cache: one msgpack file per build-id under
$XDG_CACHE_HOME/memtrace/symbols (default ~/.cache/memtrace), mapping a file vaddr to
its frames. Writers merge with what is on disk and write a temp file then rename, so
concurrent writers never leave a torn file; a corrupt file is ignored and rebuilt."""

from __future__ import annotations

import os
import re
from pathlib import Path

import msgpack

from memtrace_core.atomic_file import atomic_replace
from memtrace_core.frames import Frame, FrameKind

VERSION = 1
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
    return [Frame(fn, file, line, _CODE_KIND[k], module=module) for fn, file, line, k in packed]


class SymbolCache:
    """(build_id, vaddr) -> packed frames, loaded per build-id on first use."""

    def __init__(self, cache_dir: Path | None = None):
        self.dir = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "symbols"
        self._tables: dict[str, dict[int, Packed]] = {}
        self._dirty: dict[str, dict[int, Packed]] = {}

    def _file(self, build_id: str) -> Path:
        return self.dir / f"{build_id}.v{VERSION}.msgpack"

    def _read(self, build_id: str) -> dict[int, Packed]:
        try:
            data = self._file(build_id).read_bytes()
            table = msgpack.unpackb(data, strict_map_key=False)
            if not isinstance(table, dict):
                return {}
            return table
        except (OSError, ValueError, msgpack.UnpackException, TypeError):
            return {}  # missing or corrupt: rebuilt on the next flush

    def get(self, build_id: str | None, vaddr: int) -> Packed | None:
        if not build_id or not _SAFE_ID.match(build_id):
            return None
        table = self._tables.get(build_id)
        if table is None:
            table = self._tables[build_id] = self._read(build_id)
        got = table.get(vaddr)
        if got is not None and not isinstance(got, list):
            return None
        return got

    def put(self, build_id: str | None, vaddr: int, packed: Packed) -> None:
        if not build_id or not _SAFE_ID.match(build_id):
            return
        self._tables.setdefault(build_id, {})[vaddr] = packed
        self._dirty.setdefault(build_id, {})[vaddr] = packed

    def flush(self) -> None:
        """Merge new entries into the files on disk (memtrace_core/atomic_file.py)."""
        if not self._dirty:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            self._dirty.clear()
            return
        for build_id, new in self._dirty.items():
            merged = self._read(build_id)
            merged.update(new)
            try:
                with atomic_replace(str(self._file(build_id)), prefix=f".{build_id}.",
                                    durable=False) as f:
                    f.write(msgpack.packb(merged))
            except OSError:
                pass  # a cache that cannot be written is only slower next time
        self._dirty.clear()
