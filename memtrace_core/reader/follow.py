"""Following a capture file while it is written (`memtrace view --follow`, `memtrace top
--follow`): any number of readers, none of which the writer knows about.

Every capture writer (`run`'s tracer, `live -o`'s tee, `attach -o`'s copier: one C writer,
memtrace_core/capture/writer.h) holds an exclusive flock on the file for as long as it
writes, so a follower can tell "no new bytes yet" from "the writer is gone": a stream that
ends without TRAILER while the lock is free ended for good (the program was killed), and is
reported incomplete.

Compressed captures are zstd frames (one, or several where the writer stored stretches of
the stream) that the writer flushes at most 100 ms after data came (its flush policy): a
partly written block stays inside the decompressor until its end arrives, and a partly
decoded record inside the reader, so a reader never sees a torn record.
"""

from __future__ import annotations

import time

from memtrace_core.capture import writer_alive
from memtrace_core.errors import UserError
from memtrace_core.reader._reader import COMPRESSED_MAGIC, MAGIC
from memtrace_core.reader.frames import FramesDecompressor

CHUNK = 1 << 20
# A writer creates its file, then takes the lock: an empty file nobody holds is given this
# long to be taken before it counts as a capture that never started.
STARTING_S = 1.0


class CaptureFollower:
    """The plain stream of a capture file, as far as it is written now."""

    def __init__(self, path: str, wait_s: float = 5.0) -> None:
        self.path = path
        deadline = time.monotonic() + wait_s
        while True:  # a capture just started may not exist yet
            try:
                self._f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
                break
            except FileNotFoundError:
                if time.monotonic() > deadline:
                    raise UserError(f"{path}: no such file") from None
                time.sleep(0.05)
            except IsADirectoryError:
                raise UserError(f"{path}: is a directory, not a memtrace capture") from None
            except OSError as exc:
                raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
        self._decompressor = None
        magic = b""
        starting = min(deadline, time.monotonic() + STARTING_S)
        while len(magic) < len(MAGIC):  # a file just created may not have its magic yet
            magic += self._f.read(len(MAGIC) - len(magic))
            if len(magic) < len(MAGIC):
                now = time.monotonic()
                if now > deadline or (not self.writer_alive()
                                      and (magic or now > starting)):
                    self.close()
                    if not magic:
                        raise UserError(f"{path}: empty file, not a memtrace capture")
                    raise UserError(f"{path}: not a memtrace capture")
                time.sleep(0.05)
        if magic == COMPRESSED_MAGIC:
            self._decompressor = FramesDecompressor()
            self._pending = b""
        elif magic == MAGIC:
            self._pending = MAGIC  # the reader checks the plain stream's own magic
        else:
            self.close()
            raise UserError(f"{path}: not a memtrace capture")
        self.frame_ended = False

    def writer_alive(self) -> bool:
        return writer_alive(self._f.fileno())

    def read(self) -> bytes:
        """New plain-stream bytes since the last call (b"" when nothing new is complete)."""
        out = self._pending
        self._pending = b""
        data = self._f.read(CHUNK)
        if data:
            if self._decompressor is None:
                out += data
            else:
                out += self._decompressor.decompress(data)
        elif self._decompressor is not None and self._decompressor.at_frame_end:
            # a frame ended and nothing follows: the end only if the writer let go (a
            # writer that switches between storing and compressing ends frames mid-run)
            self.frame_ended = not self.writer_alive()
        return out

    def close(self) -> None:
        self._f.close()
