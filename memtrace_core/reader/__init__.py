"""The one consumer of the wire format (docs/FORMAT.md, API in docs/READER_API.md).

`StreamReader` decodes and aggregates in Cython/C; `read_capture` reads a capture file (raw
"MEMTRACE" streams and zlib-compressed "MEMTRACZ" files).

Decisions beyond the API text:
- Corrupt input: feed() raises CaptureError (a UserError, one line, "corrupt capture at byte
  N: why"); the state stays that of the last good record and `.error` keeps the message.
  read_capture() returns such a partial reader when the HEADER was read (a viewer can show
  it), and raises UserError when nothing usable was read.
- An mmap split or trimmed by a partial munmap stays one allocation: live_allocations() gives
  it once (first mapped byte, bytes still mapped), mmap_pieces() gives its exact ranges.
- An ALLOC of an address still live (its free was never seen) drops the old block first
  (`implicit_frees`); FREEs of unknown addresses are ignored (`ignored_frees`); an ALLOC at
  address 2**64-1 (MAP_FAILED) counts in the totals but allocates nothing.
- Validation is strict where it is cheap: node ids may not be redefined, parents and the
  nodes an ALLOC names must be defined, record lengths must match FORMAT.md.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from pathlib import Path

from memtrace_core.errors import UserError
from memtrace_core.reader._reader import MAGIC, CaptureError, StreamReader

__all__ = ["ALLOCATOR_NAMES", "COMPRESSED_MAGIC", "MAGIC", "CaptureError", "StreamReader",
           "read_capture"]

ALLOCATOR_NAMES: dict[int, str] = {
    1: "malloc",
    2: "calloc",
    3: "realloc",
    4: "posix_memalign",
    5: "aligned_alloc",
    6: "memalign",
    7: "valloc",
    8: "pvalloc",
    9: "mmap",
    10: "free",
    11: "munmap",
    12: "reallocarray",
    13: "pymalloc_malloc",
    14: "pymalloc_calloc",
    15: "pymalloc_realloc",
    16: "pymalloc_free",
}


COMPRESSED_MAGIC = b"MEMTRACZ"
# Compressed bytes handed to zlib at a time; on corrupt data the failing slice is retried in
# ever smaller slices, so every record before the damage is still read.
_SLICES = (1 << 16, 1 << 12, 1 << 8, 1 << 4, 1)


class _Stop(Exception):
    """The reader refused the inflated data: stop inflating."""


Progress = Callable[[int, int], None]  # (bytes of the file read, file size)
_RAW_CHUNK = 8 << 20  # feed() a raw file in pieces: other threads (a UI) get the GIL between


def _read_raw(name: str, data: mmap.mmap, progress: Progress | None) -> StreamReader:
    """Feed an uncompressed capture file to the reader, a bounded piece at a time."""
    reader = StreamReader()
    view = memoryview(data)
    try:
        for pos in range(0, len(view), _RAW_CHUNK):
            try:
                reader.feed(view[pos : pos + _RAW_CHUNK])
            except CaptureError as exc:
                if not reader.header:
                    raise UserError(f"{name}: {exc}") from None
                break
            if progress is not None:
                progress(min(pos + _RAW_CHUNK, len(view)), len(view))
    finally:
        view.release()
    return reader


def _read_compressed(name: str, data: mmap.mmap, progress: Progress | None) -> StreamReader:
    """Inflate a capture file's zlib stream (after "MEMTRACZ") into the reader.

    The tracer sync-flushes the stream at every buffer, so a file cut off mid-run inflates up
    to its last flush; corrupt compressed data ends the read like a corrupt record.
    """
    import zlib

    reader = StreamReader()

    def feed(out: bytes) -> None:
        try:
            reader.feed(out)
        except CaptureError as exc:
            if not reader.header:
                raise UserError(f"{name}: {exc}") from None
            raise _Stop from None

    def inflate(inflater, chunk: bytes, level: int):
        """Inflate chunk in slices of _SLICES[level]; returns (inflater, zlib error or None)."""
        step = _SLICES[level]
        for i in range(0, len(chunk), step):
            piece = chunk[i : i + step]
            saved = inflater.copy() if level + 1 < len(_SLICES) else None
            try:
                out = inflater.decompress(piece)
            except zlib.error as exc:
                if saved is None:
                    return inflater, exc
                return inflate(saved, piece, level + 1)
            if out:
                feed(out)
            if inflater.eof:
                break
        return inflater, None

    inflater = zlib.decompressobj()
    view = memoryview(data)
    try:
        pos = len(COMPRESSED_MAGIC)
        while pos < len(view) and not inflater.eof:
            chunk = bytes(view[pos : pos + _SLICES[0]])  # a copy: no export outlives view
            pos += len(chunk)
            inflater, error = inflate(inflater, chunk, 0)
            if progress is not None:
                progress(pos, len(view))
            if error is not None:
                if not reader.header:
                    raise UserError(f"{name}: corrupt compressed data ({error})")
                reader.mark_corrupt(
                    f"corrupt compressed data after record {reader.records} ({error})"
                )
                break
    except _Stop:
        pass
    finally:
        view.release()
    return reader


def read_capture(path: str | Path, progress: Progress | None = None) -> StreamReader:
    """Read a whole capture file; progress(done, total) is called as the file's bytes go by.

    Missing, empty or foreign files, and files corrupt before their HEADER, raise a one-line
    UserError. A file cut short (no TRAILER, or a partial last record) is returned with
    `.complete` False (`.truncated` True for a partial record). A file corrupt *after* its
    HEADER is returned too, holding every record before the corruption, with `.error` set to
    the one-line message (so a viewer can still show it; `memtrace stats` exits 1 on it).
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise UserError(f"{name}: empty file, not a memtrace capture")
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise UserError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{name}: is a directory, not a memtrace capture") from None
    except PermissionError:
        raise UserError(f"{name}: permission denied") from None
    except OSError as exc:
        raise UserError(f"{name}: cannot read: {exc.strerror or exc}") from None
    with data:
        magic = data[: len(MAGIC)]
        if magic == COMPRESSED_MAGIC:
            reader = _read_compressed(name, data, progress)
        elif magic == MAGIC:
            reader = _read_raw(name, data, progress)
        else:
            raise UserError(f"{name}: not a memtrace capture")
    reader.finish()
    if not reader.header:
        raise UserError(f"{name}: truncated capture: it ends before its header")
    return reader
