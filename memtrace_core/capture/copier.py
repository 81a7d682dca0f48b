"""The copier of `memtrace attach -o`: a stream from its pipe or FIFO into a capture file,
through the one capture writer (its flush policy: followers are never more than
FLUSH_INTERVAL_S behind)."""

from __future__ import annotations

import threading
import time

from memtrace_core.capture._writer import CaptureWriter


class CaptureCopier(threading.Thread):
    """Copies a stream from fd into a capture on out_fd until the stream ends (or stop())."""

    def __init__(self, fd: int, out_fd: int, sampled: bool = False) -> None:
        """sampled: the stream is a sampled capture's (compressed harder: writer.h)."""
        super().__init__(name="memtrace-copy", daemon=True)
        self.fd = fd
        self.out_fd = out_fd
        self.sampled = sampled
        self.bytes = 0
        self.first_data: float | None = None
        self.eof = threading.Event()
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        from memtrace_core.reader.pipe import PipeSource

        source = PipeSource(self.fd, 1 << 16)
        capture = CaptureWriter(self.out_fd, sampled=self.sampled)  # the fd stays ours
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
                else:
                    capture.poll()
        finally:
            try:
                capture.finish()
            except OSError:
                pass
            source.close()
            self.eof.set()
