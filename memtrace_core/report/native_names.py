"""Names for `memtrace stats`' native locations (module + offset of the innermost native
frame): function, file, line and kind from the symbolizer, with its persistent cache."""

from __future__ import annotations

from typing import Any

from memtrace_core.frames import FrameKind

_symbolizer = None


def _resolver():
    global _symbolizer
    if _symbolizer is None:
        from memtrace_core.symbols.symbolizer import Symbolizer

        _symbolizer = Symbolizer()
    return _symbolizer


def native_name(loc: Any) -> dict[str, Any]:
    """{"function", "file", "line", "kind"} of a location with .module, .offset (a return
    address minus the load base) and .build_id; the innermost frame (inlined ones first).
    A library changed since the capture is named `<library changed: path>`. The
    symbolizer writes its persistent cache when the process exits."""
    if not loc.module:
        return {"function": f"0x{loc.offset:x}", "file": "", "line": 0,
                "kind": FrameKind.UNRESOLVED.value}
    frame = _resolver().resolve(loc.module, loc.build_id, max(0, loc.offset - 1))[0]
    return {"function": frame.function, "file": frame.file, "line": frame.line,
            "kind": frame.kind.value}
