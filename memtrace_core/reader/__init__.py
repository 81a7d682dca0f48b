"""The one consumer of the wire format (docs/FORMAT.md, API in docs/READER_API.md).

`StreamReader` decodes and aggregates in Cython/C; `read_capture` reads a capture file (raw
"MEMTRACE" streams and zstd-compressed "MEMTRACZ" files); `capture_stream` yields a capture
file's plain stream, for tools that feed or time the reader themselves.

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
from collections.abc import Callable, Iterator
from pathlib import Path

from memtrace_core.errors import UserError
from memtrace_core.reader._reader import (
    ALLOCATOR_NAMES,
    COMPRESSED_MAGIC,
    MAGIC,
    CaptureError,
    StreamReader,
)
from memtrace_core.reader.frames import FramesDecompressor

__all__ = ["ALLOCATOR_NAMES", "COMPRESSED_MAGIC", "MAGIC", "CaptureError", "StreamReader",
           "capture_stream", "new_reader", "read_capture", "read_capture_at", "replay"]



# compressed bytes per step: zstd expands them up to ~100x, so output stays bounded
_COMPRESSED_SLICE = 64 << 10


Progress = Callable[[int, int], None]  # (bytes of the file read, file size)
_RAW_CHUNK = 8 << 20  # feed() a raw file in pieces: other threads (a UI) get the GIL between


def new_reader(temporary_threshold: int = 1) -> StreamReader:
    """A reader counting temporary allocations at this threshold (set before any ALLOC)."""
    reader = StreamReader()
    reader.set_temporary_threshold(temporary_threshold)
    return reader


def _read_raw(name: str, data: mmap.mmap, progress: Progress | None,
              end: int, temporary_threshold: int = 1) -> StreamReader:
    """Feed an uncompressed capture file to the reader, a bounded piece at a time."""
    reader = new_reader(temporary_threshold)
    view = memoryview(data)[:end]
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


def _read_compressed(name: str, data: mmap.mmap, progress: Progress | None,
                     end: int, temporary_threshold: int = 1) -> StreamReader:
    """Decompress a capture file's zstd frames (after "MEMTRACZ") into the reader.

    The writer flushes at most 100 ms after data came, so a file cut off mid-run
    decompresses up to its last flush. Corrupt compressed data ends the read like a corrupt
    record: the damaged slice is decompressed again in small steps, so the records before
    it are kept.
    """
    import zstandard

    reader = new_reader(temporary_threshold)
    view = memoryview(data)[:end]  # the names section after the stream is not stream
    fed = 0  # decompressed bytes handed to the reader

    def feed(out: bytes) -> bool:
        nonlocal fed
        fed += len(out)
        try:
            reader.feed(out)
        except CaptureError as exc:
            if not reader.header:
                raise UserError(f"{name}: {exc}") from None
            return False
        return True

    def salvage(upto: int) -> None:
        """Decompress again from the start in small steps; feed what the first pass lost."""
        again = FramesDecompressor()
        produced = 0
        for pos in range(len(COMPRESSED_MAGIC), upto, 512):
            try:
                out = again.decompress(bytes(view[pos : min(pos + 512, upto)]))
            except zstandard.ZstdError:
                return
            new = out[max(0, fed - produced) :]
            produced += len(out)
            if new and not feed(new):
                return

    decompressor = FramesDecompressor()
    try:
        pos = len(COMPRESSED_MAGIC)
        while pos < len(view):
            chunk = bytes(view[pos : pos + _COMPRESSED_SLICE])  # a copy: no export outlives view
            pos += len(chunk)
            try:
                out = decompressor.decompress(chunk)
            except zstandard.ZstdError as exc:
                salvage(pos)
                if not reader.header:
                    raise UserError(f"{name}: corrupt compressed data ({exc})") from None
                reader.mark_corrupt(
                    f"corrupt compressed data after record {reader.records} ({exc})"
                )
                break
            if out and not feed(out):
                break
            if progress is not None:
                progress(pos, len(view))
    finally:
        view.release()
    return reader


def read_names(path: str | Path):
    """The capture's embedded names (reader/names_section.py), or None."""
    from memtrace_core.reader.names_section import read

    return read(os.fspath(path))


def _map_file(path: str | Path) -> tuple[str, mmap.mmap]:
    """(name, read-only map) of a capture file; a one-line UserError when it cannot be."""
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
    return name, data


def read_capture(path: str | Path, progress: Progress | None = None,
                 temporary_threshold: int = 1) -> StreamReader:
    """Read a whole capture file; progress(done, total) is called as the file's bytes go by.

    Missing, empty or foreign files, and files corrupt before their HEADER, raise a one-line
    UserError. A file cut short (no TRAILER, or a partial last record) is returned with
    `.complete` False (`.truncated` True for a partial record). A file corrupt *after* its
    HEADER is returned too, holding every record before the corruption, with `.error` set to
    the one-line message (so a viewer can still show it; `memtrace stats` exits 1 on it).
    The names section after the stream, if any, is not read here (read_names).
    An allocation is temporary when freed by its thread within temporary_threshold others.
    """
    from memtrace_core.reader.names_section import stream_end

    name, data = _map_file(path)
    end = stream_end(name)
    with data:
        magic = data[: len(MAGIC)]
        if magic == COMPRESSED_MAGIC:
            reader = _read_compressed(name, data, progress, end, temporary_threshold)
        elif magic == MAGIC:
            reader = _read_raw(name, data, progress, end, temporary_threshold)
        else:
            raise UserError(f"{name}: not a memtrace capture")
    reader.finish()
    if not reader.header:
        raise UserError(f"{name}: truncated capture: it ends before its header")
    return reader


def replay(path: str | Path, reader: StreamReader,
           at_stop: Callable[[StreamReader], int | None],
           progress: Progress | None = None) -> StreamReader:
    """Feed a capture to a reader whose stop_at() is set: at each stop, at_stop(reader)
    gives the next instant to stop at, or None to end the reading there. Errors are those
    of read_capture (a corrupt part after the HEADER ends the reading early)."""
    name = os.fspath(path)
    stream = capture_stream(path, chunk=0, progress=progress)
    try:
        for chunk in stream:
            data = chunk
            while True:
                reader.feed(data)
                data = b""
                if not reader.stopped:
                    break
                next_us = at_stop(reader)
                if next_us is None:
                    return reader
                reader.stop_at(next_us)
    except CaptureError as exc:
        if not reader.header:
            raise UserError(f"{name}: {exc}") from None
        return reader
    finally:
        stream.close()
    reader.finish()
    if not reader.header:
        raise UserError(f"{name}: truncated capture: it ends before its header")
    return reader


def read_capture_at(path: str | Path, t_us: int, temporary_threshold: int = 1) -> StreamReader:
    """The capture as it stood at one instant: fed up to and including its first TICK at
    or after t_us (microseconds since the start), or to its end when none is that late.
    Its aggregates (in use per stack, heap, peak so far) are those of that instant."""
    reader = new_reader(temporary_threshold)
    reader.stop_at(t_us)
    return replay(path, reader, lambda _reader: None)


def capture_stream(path: str | Path, chunk: int = _RAW_CHUNK,
                   progress: Progress | None = None) -> Iterator[bytes]:
    """Yield the plain stream of a capture file ("MEMTRACE" magic first), decompressed.

    For tools that feed a StreamReader themselves (benchmarks, converters): pieces of CHUNK
    bytes (the last one shorter) that join to exactly what a live pipe would have carried;
    chunk 0: pieces as they come (the decompressor's output, not copied again: replay).
    Missing, empty or foreign files and corrupt compressed data raise a one-line UserError
    (a capture cut off mid-run just ends early, as with read_capture).
    """
    import zstandard

    from memtrace_core.reader.names_section import stream_end

    name, data = _map_file(path)
    end = stream_end(name)  # a names section after the stream is not stream
    with data:
        magic = data[: len(MAGIC)]
        if magic == MAGIC:
            step = chunk if chunk > 0 else _RAW_CHUNK
            for pos in range(0, end, step):
                yield data[pos : min(pos + step, end)]
                if progress is not None:
                    progress(min(pos + step, end), end)
            return
        if magic != COMPRESSED_MAGIC:
            raise UserError(f"{name}: not a memtrace capture")
        decompressor = FramesDecompressor()
        pending = bytearray()
        for pos in range(len(COMPRESSED_MAGIC), end, _COMPRESSED_SLICE):
            try:
                out = decompressor.decompress(data[pos : min(pos + _COMPRESSED_SLICE, end)])
            except zstandard.ZstdError as exc:
                raise UserError(f"{name}: corrupt compressed data ({exc})") from None
            if chunk <= 0:
                if out:
                    yield out
            else:
                pending += out
            while chunk > 0 and len(pending) >= chunk:
                yield bytes(pending[:chunk])
                del pending[:chunk]
            if progress is not None:
                progress(min(pos + _COMPRESSED_SLICE, end), end)
        if pending:
            yield bytes(pending)
