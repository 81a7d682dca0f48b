"""The HEADER record, encoded in Python at start (once): a tiny msgpack writer, so the traced
process never needs to import the msgpack package."""

from __future__ import annotations

import struct


def pack(value: object) -> bytes:
    """Encode None/bool/int/float/str/bytes/list/tuple/dict as msgpack."""
    out = bytearray()
    _pack(value, out)
    return bytes(out)


def _pack(v: object, out: bytearray) -> None:
    if v is None:
        out.append(0xC0)
    elif v is True:
        out.append(0xC3)
    elif v is False:
        out.append(0xC2)
    elif isinstance(v, int):
        if 0 <= v < 128:
            out.append(v)
        elif v >= 0:
            out += b"\xcf" + struct.pack(">Q", v)
        elif v >= -32:
            out += struct.pack("b", v)
        else:
            out += b"\xd3" + struct.pack(">q", v)
    elif isinstance(v, float):
        out += b"\xcb" + struct.pack(">d", v)
    elif isinstance(v, str):
        data = v.encode("utf-8", "surrogateescape")
        _header(len(data), out, 0xA0, 32, 0xD9, 0xDA, 0xDB)
        out += data
    elif isinstance(v, bytes | bytearray):
        n = len(v)
        out += (b"\xc4" + struct.pack(">B", n)) if n < 256 else (b"\xc6" + struct.pack(">I", n))
        out += v
    elif isinstance(v, list | tuple):
        n = len(v)
        out += bytes([0x90 | n]) if n < 16 else (b"\xdd" + struct.pack(">I", n))
        for item in v:
            _pack(item, out)
    elif isinstance(v, dict):
        n = len(v)
        out += bytes([0x80 | n]) if n < 16 else (b"\xdf" + struct.pack(">I", n))
        for key, item in v.items():
            _pack(key, out)
            _pack(item, out)
    else:
        raise TypeError(f"cannot encode {type(v).__name__}")


def _header(n: int, out: bytearray, fix: int, fix_limit: int, b8: int, b16: int, b32: int) -> None:
    if n < fix_limit:
        out.append(fix | n)
    elif n < 256:
        out += bytes([b8, n])
    elif n < 65536:
        out += bytes([b16]) + struct.pack(">H", n)
    else:
        out += bytes([b32]) + struct.pack(">I", n)


def header_record(fields: dict[str, object]) -> bytes:
    """The HEADER record: [HEADER, {fields}]."""
    from memtrace_core.tracer._tracer import HEADER_RECORD

    return pack([HEADER_RECORD, fields])
