"""The names section of a capture (docs/FORMAT.md, "Names section"): the frames of every
native address the capture uses, resolved on the machine that ran the program and appended
after the stream, so the capture opens fully named anywhere.

Layout, after the compressed stream's zstd frame:

    b"MTNAMES" version:u8 length:u64le payload[length] offset:u64le b"MTNAMEND"

Version 2 (written): payload = zstd(msgpack({"strings": [str, ...], "kinds": [str, ...],
"modules": [[path, build_id, vaddrs, counts, functions, files, lines, kinds, frame_modules],
...], "host": str, "created": float})): per module, its addresses ascending as deltas
(the first from 0), how many frames each has, then one column per frame field over all its
frames in address order, innermost first (an inline chain ends with the function it is
inlined into): functions and files index "strings", kinds index "kinds" (FrameKind values),
frame_modules index "strings" or are -1 for the module's own path. Columns of repeated small
numbers compress a quarter smaller than version 1's nested lists of strings (a pandas run's
11,640 addresses: 89 KB to 64 KB).

Version 1 (read): payload = zstd(msgpack({"modules": [[path, build_id, [[vaddr, frames],
...]], ...], "host", "created"})), frames = [[function, file, line, kind, module], ...].

`offset` (where b"MTNAMES" starts) at the very end lets a reader find the section without
scanning the stream. Readers reject a newer section version with a one-line warning and
name frames locally instead; readers from before sections stop at the end of the zstd frame
and never look further, so they read the stream exactly as before.
"""

from __future__ import annotations

import os
import struct

from memtrace_core.demangle import demangle
from memtrace_core.errors import UserError
from memtrace_core.frames import Frame, FrameKind

SECTION_MAGIC = b"MTNAMES"
FOOTER_MAGIC = b"MTNAMEND"
VERSION = 2
_HEAD = struct.Struct("<7sBQ")  # magic, version, payload length
_FOOT = struct.Struct("<Q8s")  # section offset, magic
Key = tuple[str, "str | None", int]  # (module path, build-id, vaddr)


class EmbeddedNames:
    """Frames by (path, build_id, vaddr), as resolved where the capture was made. (A plain
    class: `dataclasses` is not imported on the exit-time naming path, issue 14.)"""

    __slots__ = ("frames", "host", "created", "warning")

    def __init__(self, frames: dict[Key, list[Frame]] | None = None, host: str = "",
                 created: float = 0.0, warning: str | None = None) -> None:
        self.frames: dict[Key, list[Frame]] = {} if frames is None else frames
        self.host = host
        self.created = created
        self.warning = warning  # a section that could not be used, and why

    def get(self, path: str, build_id: str | None, vaddr: int) -> list[Frame] | None:
        return self.frames.get((path, build_id, vaddr))

    def __len__(self) -> int:
        return len(self.frames)


def encode(names: dict[Key, list[Frame]], host: str, created: float) -> bytes:
    """The whole section (header, payload, footer offset still to be added by the writer)."""
    import msgpack

    from memtrace_core.capture._writer import compress

    strings: dict[str, int] = {}
    kinds: dict[str, int] = {}

    def index(table: dict[str, int], value: str) -> int:
        return table.setdefault(value, len(table))

    modules: dict[tuple[str, str | None], list[list[int]]] = {}
    for (path, build_id, vaddr), frames in sorted(names.items(), key=lambda kv: (
            kv[0][0], kv[0][1] or "", kv[0][2])):
        cols = modules.get((path, build_id))
        if cols is None:
            cols = modules[(path, build_id)] = [[] for _ in range(7)]
            cols.append([0])  # the previous address, for the deltas
        vaddrs, counts, functions, files, lines, kind_col, frame_modules, last = cols
        vaddrs.append(vaddr - last[0])
        last[0] = vaddr
        counts.append(len(frames))
        for f in frames:
            functions.append(index(strings, f.function))
            files.append(index(strings, f.file))
            lines.append(f.line)
            kind_col.append(index(kinds, f.kind.value))
            frame_modules.append(-1 if f.module == path else index(strings, f.module))
    payload = msgpack.packb({
        "strings": list(strings), "kinds": list(kinds),
        "modules": [[path, build_id, *cols[:7]] for (path, build_id), cols in modules.items()],
        "host": host, "created": created,
    }, use_bin_type=True)
    # not zstandard's: see compress. A deep search costs a small section (a sampled
    # capture's ~12 KB payload) 2 ms for 2% fewer bytes; a big one gets level 12 (a pandas
    # run's 465 KB: 7.5 ms, against 109 ms at 19)
    packed = compress(payload, 19 if len(payload) < 65536 else 12)
    return _HEAD.pack(SECTION_MAGIC, VERSION, len(packed)) + packed


def stream_end(path: str) -> int:
    """Where the capture's stream ends: the names section's offset, else the file size."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < _FOOT.size:
            return size
        f.seek(size - _FOOT.size)
        offset, magic = _FOOT.unpack(f.read(_FOOT.size))
    return offset if magic == FOOTER_MAGIC and 0 < offset < size else size


def read(path: str) -> EmbeddedNames | None:
    """The capture's names section; None when it has none. A damaged or newer section is
    returned empty with `warning` set (the caller says it once and names locally)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < _HEAD.size + _FOOT.size:
                return None
            f.seek(size - _FOOT.size)
            offset, magic = _FOOT.unpack(f.read(_FOOT.size))
            if magic != FOOTER_MAGIC:
                return None
            if not 0 < offset <= size - _FOOT.size - _HEAD.size:
                return EmbeddedNames(warning=f"{path}: damaged names section (bad offset); "
                                             "native frames are named on this machine")
            f.seek(offset)
            smagic, version, length = _HEAD.unpack(f.read(_HEAD.size))
            if smagic != SECTION_MAGIC or offset + _HEAD.size + length + _FOOT.size != size:
                return EmbeddedNames(warning=f"{path}: damaged names section; native frames "
                                             "are named on this machine")
            if version > VERSION:
                return EmbeddedNames(warning=f"{path}: its names section is version {version}, "
                                             f"newer than this memtrace reads ({VERSION}); "
                                             "native frames are named on this machine")
            packed = f.read(length)
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return _decode(path, packed, version)


def _decode(path: str, packed: bytes, version: int = VERSION) -> EmbeddedNames:
    import msgpack
    import zstandard

    try:
        data = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(packed), raw=False,
                               strict_map_key=False)
        out = EmbeddedNames(host=str(data.get("host", "")),
                            created=float(data.get("created", 0.0)))
        if version == 1:
            for path_, build_id, entries in data["modules"]:
                for vaddr, frames in entries:
                    out.frames[(path_, build_id, int(vaddr))] = [
                        Frame(demangle(str(fn)), str(file), int(line), FrameKind(kind),
                              str(module))
                        for fn, file, line, kind, module in frames]
            return out
        strings = [str(x) for x in data["strings"]]
        kinds = [FrameKind(x) for x in data["kinds"]]
        for path_, build_id, vaddrs, counts, functions, files, lines, kind_col, mods in (
                data["modules"]):
            if not (len(vaddrs) == len(counts) and sum(counts) == len(functions) == len(files)
                    == len(lines) == len(kind_col) == len(mods)):
                raise ValueError("columns of different lengths")
            # an index Python would take from the end is damage, not a name
            if min(functions + files + kind_col + [0]) < 0 or min(mods + [-1]) < -1:
                raise ValueError("negative index")
            vaddr = at = 0
            for delta, n in zip(vaddrs, counts, strict=True):
                vaddr += int(delta)
                out.frames[(path_, build_id, vaddr)] = [
                    Frame(demangle(strings[functions[i]]), strings[files[i]], int(lines[i]),
                          kinds[kind_col[i]], path_ if mods[i] < 0 else strings[mods[i]])
                    for i in range(at, at + n)]
                at += n
        return out
    except Exception as exc:  # noqa: BLE001 - whatever is wrong inside, the stream is fine
        return EmbeddedNames(warning=f"{path}: damaged names section ({type(exc).__name__}); "
                                     "native frames are named on this machine")


def append(path: str, section: bytes) -> None:
    """Store `section` (from encode) after the capture's stream.

    A capture without a section yet (what `run --native` names at exit) gets it appended in
    place, footer last, in one write: a reader sees no section until its footer ends the
    file, and bytes after the stream that are not a zstd frame are never read as stream, so
    the file reads whole at every moment. The stream is neither read nor copied (it was
    most of what naming a big capture cost: 170 MB copied for 4 KB of names). A failed
    write is cut off again. An earlier section is replaced through a copy renamed over the
    capture, so readers see the old names or the new ones, never neither."""
    end = stream_end(path)
    tail = section + _FOOT.pack(end, FOOTER_MAGIC)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        fd = -1  # a read-only capture in a writable directory: the copy is renamed over it
    if fd >= 0:
        try:
            if os.fstat(fd).st_size == end:
                _write_at(fd, tail, end)
                return
        finally:
            os.close(fd)
    from memtrace_core.atomic_file import atomic_replace

    with open(path, "rb") as src, atomic_replace(path, ".memtrace-names-") as dst:
        stream = _limited(src, end)
        while chunk := stream.read(1 << 20):
            dst.write(chunk)
        dst.write(tail)


def _write_at(fd: int, data: bytes, offset: int) -> None:
    """All of data at offset; on any failure the file is cut back to offset."""
    done = 0
    try:
        while done < len(data):
            done += os.pwrite(fd, memoryview(data)[done:], offset + done)
    except BaseException:
        try:
            os.ftruncate(fd, offset)
        except OSError:
            pass
        raise


class _limited:
    """The first `limit` bytes of a file object."""

    def __init__(self, f, limit: int) -> None:
        self.f = f
        self.left = limit

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        data = self.f.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        return data
