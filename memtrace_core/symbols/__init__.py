"""Native symbols: module maps, the DWARF/ELF symbolizer, its worker process, and the
merge of native and Python stacks.

Typical use in a reporter (reader = memtrace_core.reader.read_capture(path)):

    resolve_ip = IpResolver(reader.maps_history)          # in-process Symbolizer + memo
    stack = hybrid_stack(py_frames, reader.native_stack(nativenode), resolve_ip)
    stale = resolve_ip.symbolizer.stale_libraries()       # say these need the same machine

py_frames are (Frame(kind=PYTHON), is_entry) pairs, innermost first, built from
reader.py_stack() and reader.codes. hybrid_stack returns the path outermost first.
In a UI, use SymbolizerWorker (a separate process) with IpResolver(..., use_worker=True):
submit(resolver.prefetch([ip - 1 for ip in ips])), then resolver.feed(worker.poll())
on a timer (lookup addresses are return addresses minus one, as hybrid_stack uses).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hybrid import hybrid_stack
    from .modmap import ModuleMap
    from .resolver import IpResolver
    from .symbolizer import Symbolizer
    from .worker import SymbolizerWorker

__all__ = ["IpResolver", "ModuleMap", "Symbolizer", "SymbolizerWorker", "hybrid_stack"]

# imported on first use: `symbols.hybrid` or `symbols.modmap` alone must not pull in
# pyelftools, msgpack and the C decoder (the model and the TUI import them early)
_WHERE = {"hybrid_stack": ".hybrid", "ModuleMap": ".modmap", "IpResolver": ".resolver",
          "Symbolizer": ".symbolizer", "SymbolizerWorker": ".worker"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
