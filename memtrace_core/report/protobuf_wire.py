"""The few protobuf wire-format pieces pprof's profile.proto needs: varints, tagged
varint fields, length-delimited fields and packed repeated varints (encoding only)."""

from __future__ import annotations

VARINT = 0
LEN = 2
_SMALL = [bytes([i]) for i in range(128)]


def varint(n: int) -> bytes:
    """Base-128 varint; negative int64 as its 64-bit two's complement (10 bytes)."""
    if 0 <= n < 128:
        return _SMALL[n]
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field: int, wire_type: int) -> bytes:
    return varint((field << 3) | wire_type)


def uint_field(field: int, value: int) -> bytes:
    """A scalar varint field; proto3 leaves zero values out."""
    return key(field, VARINT) + varint(value) if value else b""


def bytes_field(field: int, data: bytes) -> bytes:
    return key(field, LEN) + varint(len(data)) + data


def packed_field(field: int, values: list[int]) -> bytes:
    if not values:
        return b""
    return bytes_field(field, b"".join(varint(v) for v in values))
