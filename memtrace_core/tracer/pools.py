"""Memory pools of libraries that the tracer cannot see into, and what to tell the user.

A library that serves its allocations from a pool of its own (Apache Arrow: mimalloc or
jemalloc inside libarrow) calls malloc or mmap only for the pool's own memory: the tracer
records those mappings (mimalloc reserves 1 GiB at once), never the buffers the pool hands
out, so reports miss them (pandas' string columns are Arrow's from pandas 3). A program
memtrace starts can switch Arrow to malloc (`--arrow-system-pool`); otherwise the user is
told, once the pool has served something.
"""

from __future__ import annotations

import sys

ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
"""Apache Arrow's choice of memory pool, read when its default pool is first used."""

NOTE_PREFIX = "memtrace: note: "
"""How a note starts on stderr: `live` finds the runner's in the program's log by it."""


def arrow_pool_note(attached: bool = False) -> str | None:
    """One line when pyarrow, already imported, served allocations from a pool of its own;
    None otherwise (not imported, the system pool, or a pool that served nothing: pandas
    imports pyarrow whether or not the program makes Arrow data). Reads the pool's own
    figures; never imports pyarrow into a program that has not."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is None:
        return None
    try:
        pool = pyarrow.default_memory_pool()
        backend = str(pool.backend_name)
        in_use, peak = int(pool.bytes_allocated()), int(pool.max_memory())
    except Exception:  # noqa: BLE001 - a half-imported or unusual pyarrow: no note
        return None
    if backend == "system" or peak == 0:
        return None
    from memtrace_core.sizes import format_bytes

    if attached:
        return (f"pyarrow allocates from its own {backend} pool ({format_bytes(in_use)} in "
                f"use now, {format_bytes(peak)} at most), whose allocations memtrace does not "
                "see one by one, only the memory the pool maps (a program memtrace starts "
                "can use --arrow-system-pool)")
    return (f"pyarrow allocated from its own {backend} pool ({format_bytes(in_use)} in use "
            f"at the end, {format_bytes(peak)} at most), whose allocations memtrace does not "
            "see one by one, only the memory the pool maps: --arrow-system-pool records "
            "each of them")
