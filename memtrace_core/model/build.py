"""Assemble the model: a reader's call tree with its native names (the symbols package's
Namer when the capture has native stacks), and sessions for `view` and `live`."""

from __future__ import annotations

from pathlib import Path

from memtrace_core.model.calltree import CallTree, Reference
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


def growth_reference(path, reader, window_s: float):
    """The growth metric's start for a capture read at once: the capture replayed up to
    window_s before its end (its stacks' in-use figures then)."""
    from array import array

    from memtrace_core.reader import read_capture_at

    start_us = max(0, reader.last_time_us - int(window_s * 1e6))
    if start_us == 0:
        return Reference(0, 0, 0, b"")
    then = read_capture_at(path, start_us)
    figures = array("q")
    for row in then.stacks():
        figures.extend(row[5:7])  # live bytes, live count
    return Reference(then.last_time_us, then.heap_bytes, then.heap_allocations,
                     figures.tobytes())


def session_for_capture(path, *, show_internal: bool = False, names: str = "async",
                        cache_dir: Path | None = None, progress=None,
                        temporary_threshold: int = 1,
                        window_s: float | None = None,
                        all_processes: bool = False, share_cpu: bool = False) -> Session:
    """A finished session over a capture file (the tree built, names on their way); the
    growth metric covers the capture's last window_s seconds. With all_processes, the
    capture and its children's merged (model.processes; no timeline cursor there).
    share_cpu: other threads of this process run while the records are decoded (the
    caller's start-up work overlaps the reading)."""
    from memtrace_core.reader import read_capture, read_names

    namer = None
    if names == "async":  # start the worker first: its start-up overlaps the reading
        from memtrace_core.symbols.names import Namer

        namer = Namer(None, mode=names, cache_dir=cache_dir)
    from memtrace_core.errors import UserError
    from memtrace_core.model.timeline import read_with_timeline

    timeline = None
    embedded = None
    named: list = []  # the capture's own names, read when its header says native
    seen: set[int] = set()
    meanwhile = _NamesMeanwhile(namer, seen) if namer is not None and share_cpu else None

    def name_while_reading(reader) -> None:
        """The worker starts on the addresses as they are read, not once the whole
        capture is (when the tree asks, most names are in: no stack moves twice)."""
        if namer.reader is not reader:
            if not reader.header:
                return
            if not reader.header.get("native"):
                return
            named.append(read_names(path))
            namer.attach(reader, named[0])
        ips = reader.take_new_native_ips()
        if meanwhile is not None:
            meanwhile.give(ips)
        else:
            _name_now(namer, seen, ips)

    try:
        if all_processes:
            from memtrace_core.model.processes import read_processes

            reader, embedded = read_processes(path, progress, temporary_threshold)
        else:
            try:
                reader, timeline = read_with_timeline(
                    path, progress, temporary_threshold,
                    while_reading=name_while_reading if namer is not None else None,
                    share_cpu=share_cpu)
            except UserError:  # e.g. damaged compressed data: read_capture salvages more
                reader = read_capture(path, progress=progress,
                                      temporary_threshold=temporary_threshold)
    except BaseException:
        if meanwhile is not None:
            meanwhile.finish(raising=False)
        if namer is not None:
            namer.close()
        raise
    if meanwhile is not None:
        meanwhile.finish()
        meanwhile = None  # the last addresses below: here
    native = bool((reader.header or {}).get("native"))
    if native and not all_processes:
        embedded = named[0] if named else read_names(path)
    if namer is not None:
        if native:
            namer.attach(reader, embedded)
            name_while_reading(reader)  # the last addresses, and the answers so far
        else:
            namer.close()
            namer = None
    tree = call_tree(reader, names=names, cache_dir=cache_dir, namer=namer, embedded=embedded)
    if show_internal:
        tree.core.set_show_internal(True)
    if window_s is not None:
        tree.set_window(window_s)
        if all_processes:  # growth over the whole run (no replay across processes)
            reference = Reference(0, 0, 0, b"")
        elif timeline is not None:  # the instant nearest to the window's start
            start = timeline.points[timeline.index_at(reader.last_time_us
                                                      - int(window_s * 1e6))]
            reference = Reference(start.t_us, start.heap_bytes, start.heap_allocations,
                                  start.snapshot)
        else:
            reference = growth_reference(path, reader, window_s)
        tree.set_growth_from(reference)
    tree.rebuild()
    session = Session(reader, tree)
    session.timeline = timeline
    error = getattr(reader, "error", None)
    if error:
        session.error = f"capture corrupt after record {reader.records}: {error}"
    return session


def _name_now(namer, seen: set[int], ips: list[int]) -> None:
    """Addresses new to the namer: known names looked up, the others asked of the worker;
    its answers so far kept."""
    new = [ip for ip in dict.fromkeys(ips) if ip not in seen]
    seen.update(new)
    if new:
        namer.prefetch(new)
    namer.absorb()


class _NamesMeanwhile:
    """The namer's work on the addresses read so far (module map, symbol cache, requests
    to the worker: Python, a third of a second on a big native capture) on a thread of its
    own, while the decoder, which lets go of the GIL, reads on: with two cores neither
    waits for the other. Only this thread touches the namer until finish()."""

    def __init__(self, namer, seen: set[int]) -> None:
        import queue
        import threading

        self.namer = namer
        self.seen = seen
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="memtrace-names", daemon=True)
        self.thread.start()

    def give(self, ips: list[int]) -> None:
        self.queue.put(ips)

    def _run(self) -> None:
        try:
            while (ips := self.queue.get()) is not None:
                _name_now(self.namer, self.seen, ips)
        except BaseException as exc:  # noqa: BLE001 - raised again by finish()
            self.error = exc
            while self.queue.get() is not None:  # the reader goes on: drain
                pass

    def finish(self, raising: bool = True) -> None:
        """Wait for the addresses given so far to be done."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and raising:
            raise self.error
