"""Native frames for the model: names from the symbols layer, `module+0xoffset` until then.

Return addresses are mapped to (module, offset) with the capture's MAPS (ModuleMap). Names
come from the symbols package's worker process when it is available (asked once per ip,
answered in batches, polled by the model's update), so the UI never waits for DWARF.
Merging follows FORMAT.md: each `_PyEval_EvalFrameDefault` frame is replaced by the Python
frames it runs; if the counts disagree (or names are not known yet) the Python stack is
shown first and the native frames below its innermost eval frame after it.
"""

from __future__ import annotations

import os

from memtrace_core.frames import Frame, FrameKind

EVAL = "_PyEval_EvalFrameDefault"
_CORE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _is_python_module(path: str) -> bool:
    base = os.path.basename(path)
    return base.startswith(("libpython", "python"))


def _is_internal(frame: Frame) -> bool:
    """Interpreter and memtrace frames hidden between and below Python frames."""
    module = frame.module or ""
    return _is_python_module(module) or module.startswith(_CORE_DIR) or (
        frame.function.startswith(("_Py", "Py", "_PyEval", "cfunction_", "method_vectorcall"))
        and frame.kind is not FrameKind.PYTHON)


class NativeResolver:
    """Implements the model's NativeFrames protocol over the symbols package."""

    def __init__(self, reader, *, symbolize: bool = True) -> None:
        self.reader = reader
        self._maps_seen = -1
        self._modmap = None
        self._names: dict[int, list[Frame]] = {}  # ip -> frames innermost first
        self._asked: set[int] = set()
        self._arrived: set[int] = set()
        self.worker = None
        if symbolize:
            self.worker = self._start_worker()

    # -- module map ------------------------------------------------------------------------
    def _map(self):
        history = getattr(self.reader, "maps_history", None)
        n = len(history) if history is not None else 0
        if self._modmap is None or n != self._maps_seen:
            from memtrace_core.symbols.modmap import ModuleMap

            self._modmap = ModuleMap(self.reader.maps or [])
            self._maps_seen = n
        return self._modmap

    def unresolved(self, ip: int) -> Frame:
        """`libfoo.so+0x1a2b` frame for an ip with no name yet."""
        hit = self._map().lookup(ip)
        if hit is None:
            return Frame(f"{ip:#x}", "", 0, FrameKind.UNRESOLVED)
        path, _build_id, offset = hit
        return Frame(f"{os.path.basename(path)}+{offset:#x}", "", 0, FrameKind.UNRESOLVED,
                     path)

    # -- worker ----------------------------------------------------------------------------
    def _start_worker(self):
        try:
            from memtrace_core.symbols import SymbolizerWorker  # type: ignore[attr-defined]
        except ImportError:
            return None
        try:
            return SymbolizerWorker()
        except Exception:  # noqa: BLE001 - without a worker frames stay unresolved
            return None

    def _ask(self, ips: list[int]) -> None:
        new = [ip for ip in ips if ip not in self._asked]
        if not new or self.worker is None:
            return
        self._asked.update(new)
        keys = []
        for ip in new:
            hit = self._map().lookup(ip)
            if hit is not None:
                keys.append((ip, *hit))
        if keys:
            try:
                self.worker.submit(keys)
            except Exception:  # noqa: BLE001 - a dead worker leaves frames unresolved
                self.worker = None

    def poll(self) -> set[int]:
        if self.worker is not None:
            try:
                answers = self.worker.poll()
            except Exception:  # noqa: BLE001
                answers = {}
                self.worker = None
            for key, frames in (answers.items() if isinstance(answers, dict) else answers):
                ip = key[0] if isinstance(key, tuple) else key
                self._names[ip] = list(frames)
                self._arrived.add(ip)
        out, self._arrived = self._arrived, set()
        return out

    def set_names(self, names: dict[int, list[Frame]]) -> None:
        """Give names directly (tests, or a synchronous symbolizer)."""
        self._names.update(names)
        self._arrived.update(names)

    def pending(self) -> int:
        return len(self._asked) - len(self._asked & self._names.keys())

    def close(self) -> None:
        if self.worker is not None:
            try:
                self.worker.close()
            except Exception:  # noqa: BLE001
                pass
            self.worker = None

    # -- merging ---------------------------------------------------------------------------
    def hybrid(self, py: list[tuple[Frame, bool]], ips: list[int], show_internal: bool
               ) -> tuple[list[Frame], set[int]]:
        self._ask(ips)
        pending: set[int] = set()
        native: list[list[Frame]] = []  # per ip, innermost first
        for ip in ips:
            frames = self._names.get(ip)
            if frames is None:
                pending.add(ip)
                frames = [self.unresolved(ip)]
            native.append(frames)
        merged = self._merge(py, native)
        if not show_internal:
            merged = [f for f in merged if f.kind is FrameKind.PYTHON or not _is_internal(f)]
        return merged, pending

    def _merge(self, py: list[tuple[Frame, bool]], native: list[list[Frame]]) -> list[Frame]:
        """Outermost-first hybrid path."""
        groups: list[list[Frame]] = []  # Python frames per eval call, innermost group first
        current: list[Frame] = []
        for frame, is_entry in py:
            current.append(frame)
            if is_entry:
                groups.append(current)
                current = []
        if current:
            groups.append(current)
        evals = [i for i, frames in enumerate(native) if frames[-1].function == EVAL]
        out: list[Frame] = []
        if evals and len(evals) == len(groups):
            g = len(groups) - 1
            for i in range(len(native) - 1, -1, -1):  # outermost native frame first
                if i in evals:
                    out.extend(reversed(groups[g]))
                    g -= 1
                else:
                    out.extend(reversed(native[i]))
            return out
        # Counts disagree or names unknown: Python stack, then the native frames inside it.
        out.extend(f for f, _e in reversed(py))
        inner: list[Frame] = []
        for frames in native:  # innermost first
            if frames[-1].function == EVAL or any(
                    _is_python_module(f.module) for f in frames if f.module):
                break
            inner.extend(frames)
        out.extend(reversed(inner))
        return out
