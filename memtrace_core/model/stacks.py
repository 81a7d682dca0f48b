"""Stack paths: a reader stack (pynode, nativenode) as Frames, outermost first.

Python-only stacks come straight from the reader's trie and code table. Native stacks go
through a `NativeFrames` resolver (symbols package): unresolved return addresses show as
`module+0xoffset` frames until the symbolizer answers, then the stack is rebuilt. Paths are
cached per key, so a stack is turned into frames once per resolution state.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Protocol

from memtrace_core.frames import Frame, FrameKind

_CORE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def is_internal_python(frame: Frame) -> bool:
    """Interpreter plumbing (import machinery, runpy) and memtrace's own runner frames."""
    f = frame.file
    return (
        f.startswith("<frozen ")
        or f.endswith(("/runpy.py", "<frozen runpy>"))
        or f.startswith(_CORE_DIR)
    )


class NativeFrames(Protocol):
    """What the model needs from the symbols layer for native stacks."""

    def hybrid(
        self, py_frames: list[tuple[Frame, bool]], native_ips: list[int], show_internal: bool
    ) -> tuple[list[Frame], set[int]]:
        """Merged frames outermost first, and the ips in them still unresolved."""
        ...

    def poll(self) -> set[int]:
        """Ips whose names arrived since the last call."""
        ...

    def pending(self) -> int:
        """Ips submitted to the symbolizer and not answered yet."""
        ...

    def close(self) -> None:
        """Stop any worker."""
        ...


class StackFrames:
    """Frames for reader stacks, with a cache that resolution events invalidate."""

    def __init__(self, reader, native: NativeFrames | None = None) -> None:
        self.reader = reader
        self.native = native
        self.show_internal = False
        self._py_cache: dict[int, list[tuple[Frame, bool]]] = {}
        self._cache: dict[tuple[int, int], tuple[Frame, ...]] = {}
        self.unresolved: dict[tuple[int, int], set[int]] = {}
        # Equal frames share one object, so the tree can key children by identity (hashing
        # a five-field frame on every step of every path was the rebuild's main cost).
        self._intern: dict[Frame, Frame] = {}

    def set_show_internal(self, show: bool) -> None:
        """Hide or show interpreter-internal frames; every path must be rebuilt."""
        self.show_internal = show
        self._cache.clear()
        self.unresolved.clear()

    def py_frames(self, pynode: int) -> list[tuple[Frame, bool]]:
        """(Frame, is_entry) innermost first, as the reader's trie holds them."""
        cached = self._py_cache.get(pynode)
        if cached is not None:
            return cached
        codes = self.reader.codes
        out = []
        for code_id, line, is_entry in self.reader.py_stack(pynode):
            name, filename, _first = codes.get(code_id, (f"<code {code_id}>", "", 0))
            out.append((Frame(name, filename, line, FrameKind.PYTHON), bool(is_entry)))
        self._py_cache[pynode] = out
        return out

    def frames(self, pynode: int, nativenode: int) -> tuple[Frame, ...]:
        """The stack's path, outermost frame first."""
        key = (pynode, nativenode)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        py = self.py_frames(pynode)
        if nativenode and self.native is not None:
            ips = self.reader.native_stack(nativenode)
            merged, pending = self.native.hybrid(py, ips, self.show_internal)
            path = tuple(merged)
            if pending:
                self.unresolved[key] = pending
        else:
            path = tuple(f for f, _e in reversed(py))
            if not self.show_internal:
                path = tuple(f for f in path if not is_internal_python(f))
        intern = self._intern
        path = tuple([intern.setdefault(f, f) for f in path])  # one object per distinct frame
        self._cache[key] = path
        return path

    def invalidate(self, resolved_ips: Iterable[int]) -> set[tuple[int, int]]:
        """Drop cached paths that held any of these ips; returns the keys to rebuild."""
        resolved = set(resolved_ips)
        stale = set()
        for key, ips in self.unresolved.items():
            if ips & resolved:
                stale.add(key)
        for key in stale:
            self.unresolved.pop(key, None)
            self._cache.pop(key, None)
        return stale

    def poll(self) -> set[tuple[int, int]]:
        """Keys whose paths changed because the symbolizer answered."""
        if self.native is None:
            return set()
        ips = self.native.poll()
        return self.invalidate(ips) if ips else set()

    def pending(self) -> int:
        """Native frames waiting for names."""
        return self.native.pending() if self.native is not None else 0

    def close(self) -> None:
        """Stop the symbolizer worker, if any."""
        if self.native is not None:
            self.native.close()
