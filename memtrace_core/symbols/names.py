"""Names for the return addresses of one capture: the one resolver of `live`, `view` and
every report.

- One module map that knows the whole history of MAPS records (symbols.modmap).
- One symbolizer in this process for what needs no DWARF: the persistent cache (keyed by
  build-id and offset, written by every symbolizer), libraries changed since the capture,
  and the symbol tables of the interpreter and libc, read once, which recognise the
  evaluation loop and the process/thread roots at once, so the hybrid merge never waits.
- DWARF either here at once (`sync`: reports, which have nothing to show meanwhile) or in
  the worker process (`async`: the UI shows `lib+0xoffset` and renames in place).

`classify(ips)` gives each new address its flags (symbols.hybrid A_*) and frames: final
ones when known now, else a provisional `lib+0xoffset` frame flagged A_PENDING whose name
comes back later from `poll()`. Frames of an address with no name anywhere are final too,
of kind NO_SYMBOL.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..frames import Frame, FrameKind
from .hybrid import A_PENDING, address_flags, cut_address, is_interpreter_module
from .modmap import HistoryMap

_ROOT_MODULES = ("libc.so", "libc-", "libpthread", "ld-linux", "ld-", "ld64")


class Namer:
    """Addresses (ips: return addresses, named at ip - 1) -> flags and frames."""

    def __init__(self, reader, *, mode: str = "async", cache_dir: Path | None = None,
                 symbolizer=None, embedded=None) -> None:
        if mode not in ("sync", "async", "off"):
            raise ValueError(f"bad mode {mode!r}")
        self.reader = reader
        self.mode = mode
        self.map = HistoryMap()
        self._cache_dir = cache_dir
        self._sym = symbolizer
        self.worker = None
        self._waiting: dict[tuple, list[int]] = {}  # worker key -> ips
        self._answers: dict[int, list[Frame]] = {}  # ip -> final frames
        self._arrived: dict[int, list[Frame]] = {}  # answers not polled yet
        self._n_waiting = 0
        self._failures: dict[str, str] = {}
        self.notes_seen: list[str] = []
        self._executable = ""
        self.embedded = None  # the capture's own names (reader.names_section), used first
        if reader is not None:
            self.attach(reader, embedded)
        if mode == "async":
            self.worker = self._start_worker(cache_dir)

    def attach(self, reader, embedded=None) -> None:
        """The reader whose addresses these are (when the worker was started before the
        capture was read), and the names the capture carries (EmbeddedNames or None)."""
        self.reader = reader
        if embedded is not None:
            if embedded.warning:
                self._failures.setdefault("<embedded>", embedded.warning)
            if len(embedded):
                self.embedded = embedded
        self._executable = (getattr(reader, "header", None) or {}).get("executable") or ""

    @staticmethod
    def _start_worker(cache_dir: Path | None):
        """The worker process, started with warnings off: its stderr is the UI's terminal."""
        from .worker import SymbolizerWorker

        saved = os.environ.get("PYTHONWARNINGS")
        os.environ["PYTHONWARNINGS"] = "ignore"
        try:
            return SymbolizerWorker(cache_dir)
        except Exception:  # noqa: BLE001 - without a worker, names come from the cache only
            return None
        finally:
            if saved is None:
                del os.environ["PYTHONWARNINGS"]
            else:
                os.environ["PYTHONWARNINGS"] = saved

    @property
    def sym(self):
        """The in-process symbolizer (pyelftools is loaded on the first native address)."""
        if self._sym is None:
            from .symbolizer import Symbolizer

            self._sym = Symbolizer(self._cache_dir)
        return self._sym

    def lookup(self, addr: int) -> tuple[str, str | None, int] | None:
        """(path, build_id, vaddr) of an instruction address, over every MAPS snapshot (a
        reader over several processes looks it up in the address's own process)."""
        own = getattr(self.reader, "module_lookup", None)
        if own is not None:
            return own(addr)
        self.map.update(getattr(self.reader, "maps_history", None) or [])
        return self.map.lookup(addr)

    # -- the model's questions ----------------------------------------------------------
    def prefetch(self, ips: list[int]) -> None:
        """Known names looked up, the others sent to the worker at once: what classify()
        will be asked about next (the worker starts on a whole burst of addresses, not on
        the first slice of it)."""
        keys: list[tuple] = []
        for ip in ips:
            if cut_address(ip) is None:
                self._name_or_ask(ip, keys)
        self._submit(keys)

    def absorb(self) -> None:
        """Answers so far kept as known names, not reported by poll(): for addresses
        prefetched before the tree asked about any (so none needs renaming)."""
        self.poll()
        self._arrived.clear()

    def classify(self, ips: list[int]) -> list[tuple[int, list[Frame]]]:
        """(flags, frames innermost first) for each return address. Addresses whose name
        is not known here go to the worker first (it starts on them at once); their
        structure is then read from the symbol tables while it works."""
        out: list[tuple[int, list[Frame]] | None] = []
        later: list[tuple[int, tuple]] = []
        keys: list[tuple] = []
        for ip in ips:
            cut = cut_address(ip)  # the tracer's marker where it cut a deep stack
            if cut is not None:
                out.append(cut)
                continue
            got = self._name_or_ask(ip, keys)
            if isinstance(got, list):
                out.append((address_flags(got), got))  # named: flags follow from names
            else:
                later.append((len(out), got))
                out.append(None)
        self._submit(keys)
        for i, (path, build_id, vaddr) in later:
            # the name comes later; the symbol table says now whether this is an eval loop
            # or a thread root, so the merge need not wait
            frames = [Frame(f"{os.path.basename(path)}+{vaddr:#x}", "", 0,
                            FrameKind.UNRESOLVED, path)]
            out[i] = (self._structure(path, build_id, vaddr) | A_PENDING, frames)
        return out  # type: ignore[return-value]

    def _name_or_ask(self, ip: int, keys: list[tuple]) -> list[Frame] | tuple:
        """The final frames of a return address when known now, else its worker key (put
        in `keys` when it is new to the worker)."""
        frames = self._answers.get(ip)
        if frames is not None:
            return frames
        addr = ip - 1
        hit = self.lookup(addr)
        if hit is None:
            frames = self._answers[ip] = [Frame(f"{addr:#x}", "", 0, FrameKind.NO_SYMBOL)]
            return frames
        key = (hit[0], hit[1], hit[2])
        carried = self.embedded.get(*key) if self.embedded else None
        if carried is not None:  # named where the capture was made: final, no library
            self._answers[ip] = carried
            return carried
        waiting = self._waiting.get(key)
        if waiting is not None:
            if ip not in waiting:
                waiting.append(ip)
                self._n_waiting += 1
            return key
        frames = self._now(*key)
        if frames is not None:
            self._answers[ip] = frames
            return frames
        self._waiting[key] = [ip]
        self._n_waiting += 1
        keys.append(key)
        return key

    def _submit(self, keys: list[tuple]) -> None:
        if not keys:
            return
        if self.worker is not None:
            try:
                self.worker.submit(keys)
            except Exception:  # noqa: BLE001 - a dead worker: names from nowhere
                self._worker_died()
        elif self.mode == "async":
            self._worker_died()

    def name_at(self, path: str, build_id: str | None, vaddr: int) -> list[Frame]:
        """Frames at a module offset (an instruction, not a return address), at once."""
        carried = self.embedded.get(path, build_id, vaddr) if self.embedded else None
        if carried is not None:
            return carried
        frames = self._now(path, build_id, vaddr)
        return frames or [Frame(f"{os.path.basename(path)}+{vaddr:#x}", "", 0,
                                FrameKind.NO_SYMBOL, path)]

    def _structure(self, path: str, build_id: str | None, vaddr: int) -> int:
        """A_EVAL / A_ROOT from the symbol table, for the modules that can hold them."""
        base = os.path.basename(path)
        if not (is_interpreter_module(path) or path == self._executable
                or base.startswith(_ROOT_MODULES)):
            return 0
        try:
            name = self.sym.function_at(path, build_id, vaddr)
        except Exception:  # noqa: BLE001 - an unreadable symbol table: no structure known
            return 0
        if name is None:
            return 0
        return address_flags([Frame(name, "", 0, FrameKind.NATIVE, path)])

    def _now(self, path: str, build_id: str | None, vaddr: int) -> list[Frame] | None:
        """Frames known without waiting: all of them in sync mode."""
        try:
            if self.mode == "sync":
                return self.sym.resolve(path, build_id, vaddr)
            return self.sym.cached(path, build_id, vaddr)
        except Exception as exc:  # noqa: BLE001 - one bad library must not end a report
            self._failures.setdefault(path, f"{path}: symbolizer failed ({exc!r}); "
                                            "its frames show as module+offset")
            return [Frame(f"{os.path.basename(path)}+{vaddr:#x}", "", 0, FrameKind.NO_SYMBOL,
                          path)]

    def poll(self) -> dict[int, list[Frame]]:
        """Names that arrived since the last call: {ip: frames}."""
        if self.worker is not None:
            try:
                answers = self.worker.poll()
            except Exception:  # noqa: BLE001
                answers = {}
                self._worker_died()
            else:
                for key, frames in answers.items():
                    self._answer(tuple(key), list(frames))
                if self._waiting and not self.worker.alive:
                    self._answer_all_from_worker()
        out, self._arrived = self._arrived, {}
        return out

    def _answer(self, key: tuple, frames: list[Frame]) -> None:
        for ip in self._waiting.pop(key, ()):
            named = frames or [Frame(f"{os.path.basename(key[0])}+{key[2]:#x}", "", 0,
                                     FrameKind.NO_SYMBOL, key[0])]
            self._answers[ip] = named
            self._arrived[ip] = named
            self._n_waiting -= 1

    def _answer_all_from_worker(self) -> None:
        """The worker died: what it still owed has no name (final, not pending)."""
        answers = self.worker.poll() if self.worker is not None else {}
        for key, frames in answers.items():
            self._answer(tuple(key), list(frames))
        for key in list(self._waiting):
            self._answer(key, [])

    def _worker_died(self) -> None:
        self.worker = None
        self._failures.setdefault("<worker>", "the symbolizer process stopped: frames not "
                                              "named yet show as module+offset")
        for key in list(self._waiting):
            self._answer(key, [])

    def give(self, names: dict[int, list[Frame]]) -> None:
        """Answers from elsewhere (tests): {ip: frames}, delivered by the next poll()."""
        for ip, frames in names.items():
            self._answers[ip] = list(frames)
            self._arrived[ip] = list(frames)
            for key, ips in list(self._waiting.items()):
                if ip in ips:
                    ips.remove(ip)
                    self._n_waiting -= 1
                    if not ips:
                        del self._waiting[key]

    def pending(self) -> int:
        """Addresses asked of the worker and not answered yet."""
        return self._n_waiting

    def wait(self, timeout: float = 60.0) -> None:
        """Block until the worker answered everything (reports over a live-style namer)."""
        if self.worker is not None and self._waiting:
            for key, frames in self.worker.wait(timeout).items():
                self._answer(tuple(key), list(frames))

    # -- what reports say -----------------------------------------------------------------
    def stale_libraries(self) -> list[str]:
        stale = set(self._sym.stale_libraries()) if self._sym is not None else set()
        if self.worker is not None:
            stale.update(self.worker.stale_libraries())
        return sorted(stale)

    def notes(self) -> list[str]:
        notes = list(self._sym.notes) if self._sym is not None else []
        if self.worker is not None:
            notes += [n for n in self.worker.notes if n not in notes]
        return notes + list(self._failures.values())

    def flush(self) -> None:
        """Write what this process resolved to the persistent cache."""
        if self._sym is not None:
            self._sym.flush()

    def close(self) -> None:
        self.flush()
        if self.worker is not None:
            try:
                self.worker.close()
            except Exception:  # noqa: BLE001
                pass
            self.worker = None
