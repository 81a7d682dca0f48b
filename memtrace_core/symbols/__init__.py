"""Native symbols: module maps, the DWARF/ELF symbolizer, its worker process, the rules of
hybrid (Python + native) stacks, and `Namer`, the one resolver of live, view and reports.

    namer = Namer(reader, mode="sync")          # reports: names at once, in process
    namer = Namer(reader, mode="async")         # a UI: `lib+0xoffset` now, names later
    flags_and_frames = namer.classify(ips)      # return addresses -> (A_* flags, frames)
    arrived = namer.poll()                      # {ip: frames} answered by the worker

The model's tree builder (memtrace_core.model) asks the namer and merges the stacks.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing's: the exit-time naming path stays light (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from .hybrid import hybrid_stack
    from .modmap import ModuleMap
    from .names import Namer
    from .symbolizer import Symbolizer
    from .worker import SymbolizerWorker

__all__ = ["ModuleMap", "Namer", "Symbolizer", "SymbolizerWorker", "hybrid_stack"]

# imported on first use: `symbols.hybrid` or `symbols.modmap` alone must not pull in
# pyelftools, msgpack and the C decoder (the model and the TUI import them early)
_WHERE = {"hybrid_stack": ".hybrid", "ModuleMap": ".modmap", "Namer": ".names",
          "Symbolizer": ".symbolizer", "SymbolizerWorker": ".worker"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
