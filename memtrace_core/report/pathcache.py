"""Per-capture cache of call paths: the frames of every stack a report has built, so the
next report of the same capture skips symbolization and the hybrid merge entirely.

One msgpack file per (capture file, its size and mtime, --show-internal, the code that
builds paths) under $XDG_CACHE_HOME/memtrace/paths; written to a temp file then renamed
(concurrent reports never see a torn file); a corrupt or foreign file is ignored.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import msgpack

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.report.frametree import FrameTable

VERSION = 2
_KINDS = list(FrameKind)
_KIND_CODE = {k: i for i, k in enumerate(_KINDS)}
_CODE_DIRS = ("symbols", "model", "report")  # the code whose changes change paths


def _code_stamp() -> str:
    """Names and mtimes of the source and extension files paths depend on (a code change,
    or a rebuilt decoder, invalidates the cache)."""
    root = Path(__file__).resolve().parents[1]
    parts = []
    for sub in _CODE_DIRS:
        for f in sorted((root / sub).iterdir()):
            if f.suffix not in (".py", ".pyx", ".so", ".c"):
                continue
            try:
                parts.append(f"{sub}/{f.name}:{f.stat().st_mtime_ns}")
            except OSError:
                pass
    return ";".join(parts)


def cache_file(capture: str | os.PathLike, show_internal: bool,
               cache_dir: Path | None = None) -> Path | None:
    """Where this capture's paths are cached; None when the capture can't be stat-ed."""
    from memtrace_core import __version__
    from memtrace_core.symbols.cache import default_cache_dir

    try:
        real = os.path.realpath(capture)
        st = os.stat(real)
    except OSError:
        return None
    key = "\0".join([str(VERSION), __version__, real, str(st.st_size), str(st.st_mtime_ns),
                     str(bool(show_internal)), _code_stamp()])
    digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / "paths" / f"{digest}.msgpack"


class CachedPaths:
    """Stack keys (pynode, nativenode) -> interned frame ids: from the cache file when it
    has them, else built by `source` (a model StackFrames) and remembered."""

    def __init__(self, source, file: Path | None) -> None:
        self.source = source
        self.file = file
        self.table = FrameTable()
        self.paths: dict[tuple[int, int], list[int]] = {}
        self.stale: list[str] = []
        self.notes: list[str] = []
        self.misses = 0
        self._load()

    def ids(self, pynode: int, nativenode: int) -> list[int]:
        key = (pynode, nativenode)
        got = self.paths.get(key)
        if got is None:
            got = self.paths[key] = self.table.intern(self.source.frames(pynode, nativenode))
            self.misses += 1
        return got

    def _load(self) -> None:
        if self.file is None:
            return
        try:
            doc = msgpack.unpackb(self.file.read_bytes(), strict_map_key=False)
            if doc.get("version") != VERSION:
                return
            table = FrameTable(Frame(fn, file, line, _KINDS[k], module)
                               for fn, file, line, k, module in doc["frames"])
            n = len(table.frames)
            paths = {}
            for p, n_node, ids in doc["paths"]:
                if ids and not 0 <= min(ids) <= max(ids) < n:
                    return
                paths[(p, n_node)] = ids
            stale, notes = list(doc["stale"]), list(doc["notes"])
        except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError,
                msgpack.UnpackException):
            return  # missing or unreadable: rebuilt on save
        self.table, self.paths, self.stale, self.notes = table, paths, stale, notes

    def save(self, stale: list[str], notes: list[str]) -> None:
        """Write the table and every known path (only when new ones were built)."""
        self.stale = sorted(set(self.stale) | set(stale))
        self.notes = list(dict.fromkeys([*self.notes, *notes]))
        if self.file is None or not self.misses:
            return
        frames = [[f.function, f.file, f.line, _KIND_CODE[f.kind], f.module]
                  for f in self.table.frames]
        rows = [[p, n, ids] for (p, n), ids in self.paths.items()]
        data = msgpack.packb({"version": VERSION, "frames": frames, "paths": rows,
                              "stale": self.stale, "notes": self.notes})
        tmp = None
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=".paths.", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.file)
        except OSError:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
