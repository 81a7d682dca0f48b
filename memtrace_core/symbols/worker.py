"""The symbolizer in its own process, so a UI never waits on its GIL or its garbage
collection: keys go in over a pipe, results come back in batches (msgpack both ways).

The process runs main([CACHE_DIR]); it exits when its stdin closes. Requests are
written without blocking (what the pipe does not take yet is sent on the next poll).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import msgpack

from ..frames import Frame
from .cache import pack_frames, unpack_frames

BATCH_KEYS = 256
BATCH_SECONDS = 0.05
_ROOT = str(Path(__file__).resolve().parents[2])

Key = tuple


class SymbolizerWorker:
    """submit(keys) then poll() -> {key: frames}; keys are (path, build_id, vaddr)."""

    def __init__(self, cache_dir: Path | None = None):
        env = dict(os.environ)
        env["PYTHONPATH"] = _ROOT + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
        args = [sys.executable, "-c",
                "import sys; from memtrace_core.symbols.worker import main; main(sys.argv[1:])"]
        if cache_dir is not None:
            args.append(str(cache_dir))
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      env=env, bufsize=0)
        os.set_blocking(self._proc.stdout.fileno(), False)
        os.set_blocking(self._proc.stdin.fileno(), False)
        try:  # room for many answers: the worker never waits for a busy UI to read them
            import fcntl

            fcntl.fcntl(self._proc.stdout.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031),
                        1 << 20)
        except OSError:
            pass
        self._out = bytearray()  # requests not yet taken by the pipe
        self._unpacker = msgpack.Unpacker(use_list=True, strict_map_key=False)
        self._pending: set[Key] = set()
        self._stale: list[str] = []
        self.notes: list[str] = []

    @property
    def alive(self) -> bool:
        """False once the worker process has exited (pending keys stay unanswered)."""
        return self._proc.poll() is None

    @property
    def pending(self) -> int:
        """Keys submitted and not answered yet."""
        return len(self._pending)

    def submit(self, keys) -> None:
        """Queue (path, build_id, vaddr) keys; duplicates of pending keys are dropped."""
        batch = []
        for k in keys:
            k = (k[0], k[1], k[2])
            if k not in self._pending:
                self._pending.add(k)
                batch.append(list(k))
        if batch:
            self._out += msgpack.packb(batch)
            self._send()

    def _send(self) -> None:
        """Write what the pipe takes now; the rest waits for the next submit/poll."""
        while self._out:
            try:
                n = os.write(self._proc.stdin.fileno(), self._out)
            except (BlockingIOError, InterruptedError):
                return
            except (BrokenPipeError, OSError):
                self._out.clear()
                return
            del self._out[:n]

    def poll(self) -> dict[Key, list[Frame]]:
        """Results that arrived so far (never blocks)."""
        self._send()
        out: dict[Key, list[Frame]] = {}
        fd = self._proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                break
            self._unpacker.feed(data)
        for msg in self._unpacker:
            kind, body = msg[0], msg[1]
            if kind == "r":
                for path, build_id, vaddr, packed in body:
                    k = (path, build_id, vaddr)
                    self._pending.discard(k)
                    out[k] = unpack_frames(packed, path)
            elif kind == "s":
                self._stale = body
            elif kind == "n":
                self.notes.extend(body)
        return out

    def wait(self, timeout: float = 30.0) -> dict[Key, list[Frame]]:
        """Block until every submitted key is answered (tests, batch reporters)."""
        out: dict[Key, list[Frame]] = {}
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            select.select([self._proc.stdout], [self._proc.stdin] if self._out else [], [], 0.05)
            out.update(self.poll())
            if self._proc.poll() is not None:
                out.update(self.poll())
                break
        return out

    def stale_libraries(self) -> list[str]:
        return list(self._stale)

    def close(self) -> None:
        """Stop the worker (it flushes its disk cache first)."""
        if self._proc.poll() is None:
            if self._out:
                os.set_blocking(self._proc.stdin.fileno(), True)
                self._out.clear()  # unanswered requests are dropped
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> SymbolizerWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(cache_dir: Path | None) -> None:
    from .symbolizer import Symbolizer

    sym = Symbolizer(cache_dir)
    unpacker = msgpack.Unpacker(use_list=True)
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    out = sys.stdout.buffer
    queue: deque = deque()
    eof = False
    n_notes = 0
    n_stale = 0

    def send(msg) -> None:
        out.write(msgpack.packb(msg))
        out.flush()

    while not eof or queue:
        wait = 0 if queue else None
        ready, _, _ = select.select([stdin], [], [], wait)
        if ready:
            data = os.read(stdin.fileno(), 1 << 16)
            if not data:
                eof = True
            else:
                unpacker.feed(data)
                for batch in unpacker:
                    queue.extend(batch)
            continue
        # answer a batch: at most BATCH_KEYS keys or BATCH_SECONDS of work
        t_end = time.monotonic() + BATCH_SECONDS
        answered = []
        while queue and len(answered) < BATCH_KEYS and time.monotonic() < t_end:
            path, build_id, vaddr = queue.popleft()
            frames = sym.resolve(path, build_id, vaddr)
            answered.append([path, build_id, vaddr, pack_frames(frames)])
        stale = sym.stale_libraries()
        if len(stale) != n_stale:
            n_stale = len(stale)
            send(["s", stale])
        if len(sym.notes) != n_notes:
            send(["n", sym.notes[n_notes:]])
            n_notes = len(sym.notes)
        send(["r", answered])
        if not queue:
            sym.flush()
    sym.flush()


def main(argv: list[str]) -> None:
    """Worker process entry: argv = [CACHE_DIR]."""
    try:
        _serve(Path(argv[0]) if argv else None)
    except (BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
