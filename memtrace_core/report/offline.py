"""Synchronous native frames for offline reports: every address resolved now, in process.

The live UI asks a worker process and shows `module+0xoffset` until names arrive; a report
has nothing to show meanwhile, so it resolves each return address at once with the
Symbolizer (persistent cache: a second report of the same program costs dict lookups).
`OfflineNative` implements the model's `NativeFrames` protocol, so stacks become frames
through the one path the model uses: `StackFrames` -> `symbols.hybrid_stack`.
"""

from __future__ import annotations

import os
from pathlib import Path

from memtrace_core.frames import Frame, FrameKind

STALE_ADVICE = ("native reports must be made on the machine that ran the program, "
                "with the same library builds")


class MapsHistory:
    """ip -> (path, build_id, vaddr) in the newest MAPS snapshot that holds it.

    The last snapshot first; libraries closed (dlclose) before the end are still found in
    the snapshots that had them."""

    def __init__(self, history: list, latest: list | None = None) -> None:
        from memtrace_core.symbols.modmap import ModuleMap

        snapshots = list(history or [])
        if latest and (not snapshots or snapshots[-1] != latest):
            snapshots.append(latest)
        self._maps = [ModuleMap(m) for m in reversed(snapshots)]

    def lookup(self, ip: int) -> tuple[str, str | None, int] | None:
        for modmap in self._maps:
            hit = modmap.lookup(ip)
            if hit is not None:
                return hit
        return None


class OfflineNative:
    """The model's NativeFrames protocol, answered synchronously by a Symbolizer.

    The symbols package (and pyelftools) is imported on the first address only: a report
    whose paths all come from the per-capture path cache never loads it."""

    def __init__(self, reader, cache_dir: Path | None = None, symbolizer=None) -> None:
        self._reader = reader
        self._cache_dir = cache_dir
        self._symbolizer = symbolizer
        self._maps: MapsHistory | None = None
        self._hybrid = None
        self._by_ip: dict[int, list[Frame]] = {}
        self._failures: dict[str, str] = {}

    @property
    def symbolizer(self):
        if self._symbolizer is None:
            from memtrace_core.symbols.symbolizer import Symbolizer

            self._symbolizer = Symbolizer(self._cache_dir)
        return self._symbolizer

    @property
    def maps(self) -> MapsHistory:
        if self._maps is None:
            self._maps = MapsHistory(getattr(self._reader, "maps_history", None) or [],
                                     getattr(self._reader, "maps", None))
        return self._maps

    def resolve_ip(self, ip: int) -> list[Frame]:
        """Frames at one instruction address, innermost first."""
        got = self._by_ip.get(ip)
        if got is None:
            hit = self.maps.lookup(ip)
            if hit is None:
                got = [Frame(f"0x{ip:x}", "", 0, FrameKind.UNRESOLVED)]
            else:
                try:
                    got = self.symbolizer.resolve(*hit)
                except Exception as exc:  # noqa: BLE001 - one bad library must not end a report
                    path, _build_id, vaddr = hit
                    self._failures.setdefault(path, f"{path}: symbolizer failed ({exc!r}); "
                                                    "its frames show as module+offset")
                    got = [Frame(f"{os.path.basename(path)}+0x{vaddr:x}", "", 0,
                                 FrameKind.UNRESOLVED, module=path)]
            self._by_ip[ip] = got
        return got

    def hybrid(self, py_frames: list[tuple[Frame, bool]], native_ips: list[int],
               show_internal: bool) -> tuple[list[Frame], set[int]]:
        if self._hybrid is None:
            from memtrace_core.symbols.hybrid import hybrid_stack

            self._hybrid = hybrid_stack
        return self._hybrid(py_frames, native_ips, self.resolve_ip, show_internal), set()

    def poll(self) -> set[int]:
        return set()

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        """Write what was resolved to the persistent cache."""
        if self._symbolizer is not None:
            self._symbolizer.flush()

    def stale_libraries(self) -> list[str]:
        return self._symbolizer.stale_libraries() if self._symbolizer is not None else []

    def notes(self) -> list[str]:
        notes = list(self._symbolizer.notes) if self._symbolizer is not None else []
        return notes + list(self._failures.values())


def stale_message(paths: list[str]) -> str:
    """One line naming the libraries whose frames could not be named, and what to do."""
    names = ", ".join(paths)
    return (f"{len(paths)} librar{'y' if len(paths) == 1 else 'ies'} changed or missing since "
            f"the capture ({names}): their frames show as <library changed: ...>; "
            f"{STALE_ADVICE}")
