"""The capture file written from a stream's bytes (`live -o`, `attach -o`): the format the
tracer writes itself under `memtrace run` (docs/FORMAT.md), "MEMTRACZ" then one zstd frame of
the plain stream, flushed block by block so a file cut off (a crash, a follower reading it
now) reads up to its last flush."""

from __future__ import annotations

import os
import threading
import time


class CaptureWriter:
    """Compresses the stream into fd (owned: close() closes it)."""

    def __init__(self, fd: int) -> None:
        import zstandard

        from memtrace_core.reader import COMPRESSED_MAGIC

        self.fd = fd
        self._zstd = zstandard.ZstdCompressor(level=2).compressobj()
        self._flush_block = zstandard.COMPRESSOBJ_FLUSH_BLOCK
        self._write(COMPRESSED_MAGIC)

    @classmethod
    def create(cls, path: str) -> CaptureWriter:
        """A new capture at path, with the writer's lock taken (followers see a writer alive:
        memtrace_core/reader/follow.py)."""
        from memtrace_core.capture_lock import take_writer_lock

        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        take_writer_lock(fd)
        return cls(fd)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def write(self, data: bytes) -> None:
        self._write(self._zstd.compress(data))

    def flush(self) -> None:
        """Make everything written so far readable from the file."""
        self._write(self._zstd.flush(self._flush_block))

    def finish(self) -> None:
        """End the zstd frame (the fd stays open)."""
        self._write(self._zstd.flush())

    def close(self) -> None:
        try:
            self.finish()
        finally:
            os.close(self.fd)


class CaptureCopier(threading.Thread):
    """Copies a stream from its pipe or FIFO into a capture file until the stream ends (or
    stop()), flushed at least every FLUSH_S so followers (`view --follow`) are never more
    than that behind (`memtrace attach -o`)."""

    FLUSH_S = 0.2

    def __init__(self, fd: int, out_fd: int) -> None:
        super().__init__(name="memtrace-copy", daemon=True)
        self.fd = fd
        self.out_fd = out_fd
        self.bytes = 0
        self.first_data: float | None = None
        self.eof = threading.Event()
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        from memtrace_core.reader.pipe import PipeSource

        source = PipeSource(self.fd, 1 << 16)
        capture = CaptureWriter(self.out_fd)  # the fd stays the caller's to close
        last_flush = time.monotonic()
        dirty = False
        try:
            while not self._stop_event.is_set():
                data = source.next()
                if data is None:
                    break
                if data:
                    if self.first_data is None:
                        self.first_data = time.monotonic()
                    capture.write(data)
                    self.bytes += len(data)
                    dirty = True
                if dirty and time.monotonic() - last_flush >= self.FLUSH_S:
                    capture.flush()
                    last_flush = time.monotonic()
                    dirty = False
        finally:
            try:
                capture.finish()
            except OSError:
                pass
            source.close()
            self.eof.set()
