"""Native frames for the model: names from the symbols worker, `module+0xoffset` until then.

Return addresses are looked up at ip - 1 (the call instruction) in the capture's MAPS
(ModuleMap); names come from the symbols package's worker process (asked once per
address, answered in batches, polled by the model's update), so the UI never waits for
DWARF. Once every address of a stack has an answer, the stack is merged with its Python
frames by `symbols.hybrid_stack`; before that, the Python stack is shown with the native
frames inside its innermost interpreter frame below it, as `lib.so+0x1a2b` (unresolved),
and the model rebuilds the path in place when the names arrive.
"""

from __future__ import annotations

import os

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.model.stacks import is_internal_python
from memtrace_core.symbols.hybrid import hybrid_stack, is_interpreter_module, is_memtrace_frame


class NativeResolver:
    """Implements the model's NativeFrames protocol over the symbols package."""

    def __init__(self, reader, *, symbolize: bool = True) -> None:
        self.reader = reader
        self._maps_seen = -1
        self._modmap = None
        self._names: dict[int, list[Frame]] = {}  # address (ip - 1) -> frames innermost first
        self._key_addrs: dict[tuple, set[int]] = {}  # worker key -> addresses
        self._asked: set[int] = set()
        self._arrived: set[int] = set()
        self.worker = None
        if symbolize:
            self.worker = self._start_worker()

    @staticmethod
    def _start_worker():
        """The worker process, started with warnings off: its stderr is the UI's terminal."""
        from memtrace_core.symbols import SymbolizerWorker

        saved = os.environ.get("PYTHONWARNINGS")
        os.environ["PYTHONWARNINGS"] = "ignore"
        try:
            return SymbolizerWorker()
        except Exception:  # noqa: BLE001 - without a worker frames stay unresolved
            return None
        finally:
            if saved is None:
                del os.environ["PYTHONWARNINGS"]
            else:
                os.environ["PYTHONWARNINGS"] = saved

    def _map(self):
        history = getattr(self.reader, "maps_history", None)
        n = len(history) if history is not None else 0
        if self._modmap is None or n != self._maps_seen:
            from memtrace_core.symbols.modmap import ModuleMap

            self._modmap = ModuleMap(self.reader.maps or [])
            self._maps_seen = n
        return self._modmap

    def unresolved(self, addr: int) -> Frame:
        """`libfoo.so+0x1a2b` frame for an address with no name yet."""
        hit = self._map().lookup(addr)
        if hit is None:
            return Frame(f"{addr:#x}", "", 0, FrameKind.UNRESOLVED)
        path, _build_id, offset = hit
        return Frame(f"{os.path.basename(path)}+{offset:#x}", "", 0, FrameKind.UNRESOLVED,
                     path)

    def _ask(self, addrs: list[int]) -> None:
        new = [a for a in addrs if a not in self._asked and a not in self._names]
        if not new:
            return
        self._asked.update(new)
        keys = []
        for addr in new:
            hit = self._map().lookup(addr)
            if hit is None:
                self._names[addr] = [self.unresolved(addr)]  # no module: nothing to ask
                continue
            key = (hit[0], hit[1], hit[2])
            self._key_addrs.setdefault(key, set()).add(addr)
            keys.append(key)
        if keys and self.worker is not None:
            try:
                self.worker.submit(keys)
            except Exception:  # noqa: BLE001 - a dead worker leaves frames unresolved
                self.worker = None

    def poll(self) -> set[int]:
        """Return addresses (as the reader gives them, ip) whose names arrived."""
        if self.worker is not None:
            try:
                answers = self.worker.poll()
            except Exception:  # noqa: BLE001
                answers, self.worker = {}, None
            for key, frames in answers.items():
                for addr in self._key_addrs.pop(tuple(key), ()):
                    self._names[addr] = list(frames) or [self.unresolved(addr)]
                    self._arrived.add(addr + 1)
        out, self._arrived = self._arrived, set()
        return out

    def set_names(self, names: dict[int, list[Frame]]) -> None:
        """Give names for return addresses directly (tests, a synchronous symbolizer)."""
        for ip, frames in names.items():
            self._names[ip - 1] = frames
            self._arrived.add(ip)

    def pending(self) -> int:
        return len(self._asked) - len(self._asked & self._names.keys())

    def close(self) -> None:
        if self.worker is not None:
            try:
                self.worker.close()
            except Exception:  # noqa: BLE001
                pass
            self.worker = None

    def hybrid(self, py: list[tuple[Frame, bool]], ips: list[int], show_internal: bool
               ) -> tuple[list[Frame], set[int]]:
        """(path outermost first, return addresses still unnamed)."""
        self._ask([ip - 1 for ip in ips])
        pending = {ip for ip in ips if (ip - 1) not in self._names}
        if not pending:
            merged = hybrid_stack(py, ips, self._names.__getitem__, show_internal)
            if not show_internal:  # import machinery and runpy, as in Python-only stacks
                merged = [f for f in merged
                          if f.kind is not FrameKind.PYTHON or not is_internal_python(f)]
            return merged, pending
        out = [f for f, _e in reversed(py) if show_internal or not is_internal_python(f)]
        inner: list[Frame] = []
        for ip in ips:  # innermost first, down to the first interpreter frame
            frames = self._names.get(ip - 1) or [self.unresolved(ip - 1)]
            if any(is_interpreter_module(f.module) for f in frames if f.module):
                break
            inner.extend(f for f in frames if show_internal or not is_memtrace_frame(f))
        if not py:
            inner = [f for ip in ips for f in (self._names.get(ip - 1)
                                                or [self.unresolved(ip - 1)])]
        out.extend(reversed(inner))
        return out, pending
