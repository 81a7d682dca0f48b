"""Addresses of one capture -> frames: its module map, a symbolizer (in process or the
worker process) and a memo, as hybrid_stack's `resolve_ip` wants it."""

from __future__ import annotations

from ..frames import Frame, FrameKind
from .modmap import ModuleMap
from .symbolizer import Symbolizer


class IpResolver:
    """Callable: lookup address (ip - 1 for return addresses) -> frames, innermost first.

    `maps_history` is the reader's maps_history (or [maps]). Without a worker, frames are
    resolved here on first use. With a SymbolizerWorker, call prefetch() with the
    addresses, feed() it what worker.poll() returns, and addresses not answered yet
    resolve to a provisional `basename+0xoff` frame (not memoized).
    """

    def __init__(self, maps_history: list[list], symbolizer: Symbolizer | None = None,
                 use_worker: bool = False):
        self.map = ModuleMap.from_history(maps_history) if maps_history else ModuleMap([])
        self.symbolizer = symbolizer if symbolizer is not None or use_worker else Symbolizer()
        self._memo: dict[int, list[Frame]] = {}
        self._by_key: dict[tuple, list[int]] = {}

    def key(self, addr: int) -> tuple[str, str | None, int] | None:
        return self.map.lookup(addr)

    def prefetch(self, addrs) -> list[tuple]:
        """Keys (path, build_id, vaddr) still to resolve for these addresses; give them
        to SymbolizerWorker.submit()."""
        out = []
        for a in addrs:
            if a in self._memo:
                continue
            k = self.map.lookup(a)
            if k is None:
                continue
            waiting = self._by_key.setdefault(k, [])
            if not waiting:
                out.append(k)
            if a not in waiting:
                waiting.append(a)
        return out

    def feed(self, results: dict) -> None:
        """Results of SymbolizerWorker.poll()."""
        for k, frames in results.items():
            for a in self._by_key.pop(k, ()):
                self._memo[a] = frames

    def __call__(self, addr: int) -> list[Frame]:
        got = self._memo.get(addr)
        if got is not None:
            return got
        k = self.map.lookup(addr)
        if k is None:
            frames = [Frame(f"0x{addr:x}", "", 0, FrameKind.UNRESOLVED)]
        elif self.symbolizer is None:  # worker mode, not answered yet
            path, _, vaddr = k
            return [Frame(f"{path.rsplit('/', 1)[-1]}+0x{vaddr:x}", "", 0,
                          FrameKind.UNRESOLVED, module=path)]
        else:
            frames = self.symbolizer.resolve(*k)
        self._memo[addr] = frames
        return frames
