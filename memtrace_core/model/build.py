"""Assemble the model: a reader's call tree with its native names (the symbols package's
Namer when the capture has native stacks), and sessions for `view` and `live`."""

from __future__ import annotations

from pathlib import Path

from memtrace_core.model.calltree import CallTree
from memtrace_core.model.session import Session


def call_tree(reader, *, native: bool | None = None, names: str = "async",
              cache_dir: Path | None = None, namer=None, embedded=None) -> CallTree:
    """A CallTree over a reader. names: "async" (a worker process names native frames,
    `lib+0xoffset` meanwhile), "sync" (named at once, in this process: reports) or "off"
    (names only as given to the namer: tests)."""
    if native is None:
        native = bool((reader.header or {}).get("native"))
    if native and namer is None:
        from memtrace_core.symbols.names import Namer

        namer = Namer(reader, mode=names, cache_dir=cache_dir, embedded=embedded)
    return CallTree(reader, namer, native=native)


def session_for_capture(path, *, show_internal: bool = False, names: str = "async",
                        cache_dir: Path | None = None, progress=None) -> Session:
    """A finished session over a capture file (the tree built, names on their way)."""
    from memtrace_core.reader import read_capture, read_names

    namer = None
    if names == "async":  # start the worker first: its start-up overlaps the reading
        from memtrace_core.symbols.names import Namer

        namer = Namer(None, mode=names, cache_dir=cache_dir)
    try:
        reader = read_capture(path, progress=progress)
    except BaseException:
        if namer is not None:
            namer.close()
        raise
    native = bool((reader.header or {}).get("native"))
    embedded = read_names(path) if native else None
    if namer is not None:
        if native:
            namer.attach(reader, embedded)
        else:
            namer.close()
            namer = None
    tree = call_tree(reader, names=names, cache_dir=cache_dir, namer=namer, embedded=embedded)
    if show_internal:
        tree.core.set_show_internal(True)
    tree.rebuild()
    session = Session(reader, tree)
    error = getattr(reader, "error", None)
    if error:
        session.error = f"capture corrupt after record {reader.records}: {error}"
    return session
