"""The hand-written protobuf encoder against the test decoder (varints at the edges)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from memtrace_core.report.protobuf_wire import bytes_field, packed_field, uint_field, varint
from tests.report.report_support import _varint, decode_message, packed


@given(st.integers(min_value=-(2**63), max_value=2**64 - 1))
def test_varint_roundtrip(n):
    value, end = _varint(varint(n), 0)
    assert value == n % 2**64 and end == len(varint(n))


@given(st.lists(st.integers(min_value=0, max_value=2**63), max_size=50),
       st.integers(min_value=1, max_value=2**29 - 1), st.binary(max_size=300))
def test_fields_roundtrip(values, number, blob):
    data = packed_field(1, values) + uint_field(2, number) + bytes_field(3, blob)
    msg = decode_message(data)
    assert packed(msg.get(1, [])) == values
    assert msg[2] == [number] and msg[3] == [blob]


def test_known_encodings():
    assert varint(0) == b"\x00" and varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"
    assert uint_field(1, 0) == b""  # proto3: zero scalars are left out
    assert uint_field(1, 150) == b"\x08\x96\x01"
