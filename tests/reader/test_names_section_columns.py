"""The names section's version 2 columns (docs/FORMAT.md, "Names section"): what encode
writes reads back as the same frames, and damage inside the columns is one warning (the
capture then names its frames locally), never a wrong name."""

from __future__ import annotations

import struct

import msgpack
import zstandard

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.reader import names_section

LIB = "/usr/lib/libdemo.so"
OTHER = "/usr/lib/libother.so"
NAMES = {
    (LIB, "ab12", 0x1200): [Frame("inner", "demo.c", 12, FrameKind.INLINE, LIB),
                            Frame("outer", "demo.c", 30, FrameKind.NATIVE, LIB)],
    (LIB, "ab12", 0x1000): [Frame("outer", "demo.c", 28, FrameKind.NATIVE, LIB)],
    (LIB, "ab12", 0x9000): [Frame("libdemo.so+0x9000", "", 0, FrameKind.NO_SYMBOL, LIB)],
    (OTHER, None, 0x40): [Frame("helper", "other.c", 7, FrameKind.NATIVE, OTHER),
                          Frame("from_lib", "demo.h", 3, FrameKind.INLINE, LIB)],
}


def _write(tmp_path, section: bytes):
    capture = tmp_path / "names.mtrace"
    capture.write_bytes(b"MEMTRACZ")  # a stream to put the section after
    names_section.append(str(capture), section)
    return names_section.read(str(capture))


def _payload(section: bytes) -> dict:
    return msgpack.unpackb(zstandard.ZstdDecompressor().decompress(section[16:]),
                           raw=False, strict_map_key=False)


def _section(payload: dict) -> bytes:
    packed = zstandard.ZstdCompressor(write_content_size=True).compress(
        msgpack.packb(payload, use_bin_type=True))
    return struct.pack("<7sBQ", b"MTNAMES", 2, len(packed)) + packed


def test_columns_read_back_as_the_frames_given(tmp_path):
    section = names_section.encode(NAMES, "host", 1.5)
    assert section[7] == names_section.VERSION == 2
    read = _write(tmp_path, section)
    assert read is not None and read.warning is None
    assert read.frames == NAMES and (read.host, read.created) == ("host", 1.5)
    columns = {m[0]: m for m in _payload(section)["modules"]}
    assert columns[LIB][2] == [0x1000, 0x200, 0x7E00]  # addresses ascending, as deltas
    assert columns[LIB][3] == [1, 2, 1]  # frames per address
    assert columns[OTHER][8][1] >= 0 and columns[LIB][8] == [-1, -1, -1, -1]


def test_damage_in_the_columns_is_a_warning_not_a_wrong_name(tmp_path):
    good = _payload(names_section.encode(NAMES, "host", 1.5))
    for column, value in ((4, -1), (5, -2), (7, -1), (8, -2), (4, 10_000)):
        payload = dict(good, modules=[list(m) for m in good["modules"]])
        payload["modules"][0][column] = [value, *payload["modules"][0][column][1:]]
        read = _write(tmp_path, _section(payload))
        assert read is not None and read.frames == {}, (column, value)
        assert read.warning is not None and "damaged names section" in read.warning
    short = dict(good, modules=[list(m) for m in good["modules"]])
    short["modules"][0][6] = short["modules"][0][6][:-1]  # one line fewer than frames
    read = _write(tmp_path, _section(short))
    assert read is not None and "damaged names section" in (read.warning or "")
