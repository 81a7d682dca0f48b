"""Name every native address a capture uses, on the machine that ran the program, and store
the names in the capture (reader/names_section.py), so it opens fully named anywhere:
`run --native`, `live --native -o` and `attach --native -o` do it when the capture is
finished; `memtrace symbolize FILE` does it for an existing capture.

Only the addresses in stacks that allocated are named (every one of them, inline chains,
file and line), through the same symbolizer and persistent cache as every report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from memtrace_core.frames import Frame
from memtrace_core.reader import names_section

Progress = Callable[[str, int, int], None]  # (what, done, total)


def used_addresses(reader) -> set[int]:
    """Return addresses of every native stack an allocation was recorded with."""
    ips: set[int] = set()
    seen_nodes: set[int] = set()
    for _py, nat, *_rest in reader.stacks():
        if not nat or nat in seen_nodes:
            continue
        seen_nodes.add(nat)
        ips.update(reader.native_stack(nat))
    return ips


def resolve_all(reader, cache_dir=None, progress: Progress | None = None,
                addresses: set[int] | None = None,
                maps_history: list[list] | None = None) -> dict[names_section.Key, list[Frame]]:
    """Frames of every used address (given, or found from the reader's stacks), keyed as the
    names section keys them, through the maps history given or the reader's."""
    from memtrace_core.symbols.modmap import HistoryMap
    from memtrace_core.symbols.symbolizer import Symbolizer

    modmap = HistoryMap()
    modmap.update(reader.maps_history or [] if maps_history is None else maps_history)
    keys = set()
    for ip in used_addresses(reader) if addresses is None else addresses:
        hit = modmap.lookup(ip - 1)
        if hit is not None:
            keys.add(hit)
    sym = Symbolizer(cache_dir)
    out: dict[names_section.Key, list[Frame]] = {}
    by_module: dict[tuple[str, str | None], list[int]] = {}
    for path, build_id, vaddr in keys:
        by_module.setdefault((path, build_id), []).append(vaddr)
    done = 0
    for (path, build_id), vaddrs in sorted(by_module.items(),
                                           key=lambda kv: (kv[0][0], kv[0][1] or "")):
        vaddrs.sort()
        for at in range(0, len(vaddrs), 256):  # a module's addresses may need its DWARF
            if progress is not None:
                progress("naming native frames", done, len(keys))
            chunk = vaddrs[at:at + 256]
            for vaddr, frames in sym.resolve_module(path, build_id, chunk).items():
                out[(path, build_id, vaddr)] = frames
            done += len(chunk)
    if progress is not None:
        progress("naming native frames", len(keys), len(keys))
    sym.flush()
    return out


def embed(path: str, cache_dir=None, progress: Progress | None = None,
          known: tuple[set[int], bytes] | None = None) -> int:
    """Add (or replace) the capture's names section; the number of addresses named. A
    capture without native stacks gets no section (0).

    known: what the capture's stream says about native frames when the tracer that wrote it
    ran in this process (tracer/_tracer.pyx: native_summary): its stack trie's addresses and
    its last maps snapshot. The stream is then not read at all (reading it back cost more
    than naming: 0.3 s of CPU for 11 M allocations)."""
    import gc

    # At the exit of `run --native` every object of the traced program is still alive
    # (PyTorch's: 166,000), and the naming's own (acyclic) objects set off full collections
    # over all of them: 0.16 s of the 0.51 s it took to name a PyTorch run's 16,300 addresses.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _embed(path, cache_dir, progress, known)
    finally:
        if collecting:
            gc.enable()


def _embed(path: str, cache_dir, progress: Progress | None,
           known: tuple[set[int], bytes] | None) -> int:
    from memtrace_core.reader import new_reader, replay

    if known is not None:
        from memtrace_core.reader._reader import maps_snapshot

        addresses, maps = known
        names = resolve_all(None, cache_dir, progress, addresses, [maps_snapshot(maps)])
        _store(path, names)
        return len(names)
    # The stack tries and the maps are all it takes: the tracer defines a native node only
    # for a stack it records an allocation with, so every address of the trie is used, and
    # the allocations need not be counted (most of the cost of reading a big capture).
    reader = new_reader()
    reader.read_nodes_only()
    replay(path, reader, lambda _reader: None)
    if not (reader.header or {}).get("native"):
        return 0
    names = resolve_all(reader, cache_dir, progress, reader.native_ips())
    _store(path, names)
    return len(names)


def _store(path: str, names: dict[names_section.Key, list[Frame]]) -> None:
    _ensure_compressed(path)
    names_section.append(path, names_section.encode(names, os.uname().nodename, time.time()))


def _ensure_compressed(path: str) -> None:
    """A plain (uncompressed) capture becomes the compressed container first: readers
    before the names section feed a plain file whole, and would take the section for
    records."""
    from memtrace_core.reader import MAGIC

    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            return
    from memtrace_core.atomic_file import atomic_replace
    from memtrace_core.capture import CaptureWriter

    end = names_section.stream_end(path)
    with open(path, "rb") as src, atomic_replace(path, ".memtrace-z-") as dst:
        dst.flush()
        capture = CaptureWriter(dst.fileno())  # the file stays atomic_replace's to close
        left = end
        while left > 0:
            chunk = src.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
            capture.write(chunk)
        capture.finish()
