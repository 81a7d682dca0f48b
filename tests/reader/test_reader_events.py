"""EVENTS records (format 9): ALLOC_SAMEs and FREE_SAMEs packed in a bin. The reader counts
each item exactly as the record it stands for, checks a bin whole before any of it counts,
and takes a bin cut off by the end of the bytes so far as not there yet. The streams come
from tests/streamgen.py's own encoder of the format (msgpack-python, not the tracer's C)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memtrace_core.reader import CaptureError, StreamReader
from tests.reader.reader_helpers import read_all, snapshot
from tests.streamgen import (
    ALLOC_SAME,
    EVENTS,
    FREE_FN,
    FREE_SAME,
    MALLOC,
    StreamWriter,
    events_items,
    events_number,
    events_payload,
)

# (address, size) of each item, size None for a FREE_SAME: deltas of every width, up and
# down, sizes of 1 to 9 bytes, a block freed and its address handed out again
ITEMS: list[tuple[int, int | None]] = [
    (0x7F00_0000_2000, 16),
    (0x7F00_0000_2000, None),
    (0x7F00_0000_2000, 4111),
    (0x7F00_0010_0000, 1 << 20),
    (0x5555_0000_0040, 1 << 40),
    (0x7F00_0000_2000, None),
    (0x10, 127),
    (0x7F00_0010_0000, None),
    (0xFFFF_FFFF_FFFF_FFF0, 128),  # a delta of more than 56 bits: a 9-byte number
    (0x10, None),
    (0x20, (1 << 62) - 1),
]


def _program(w: StreamWriter) -> None:
    """The full ALLOC and FREE whose contexts the items repeat."""
    w.code(1, "work", "work.py", 1)
    w.pynode(1, 0, 1, 7)
    w.alloc(1, MALLOC, 0x1000, 10, 1)
    w.free(1, FREE_FN, 0x1000)


def _streams(items: list[tuple[int, int | None]]) -> tuple[StreamWriter, StreamWriter]:
    """The same program as ALLOC_SAME/FREE_SAME records and as one EVENTS record."""
    records, packed = StreamWriter(format=9), StreamWriter(format=9)
    for w in (records, packed):
        _program(w)
    for address, size in items:
        delta = records._delta(address)
        records.record(*((FREE_SAME, delta) if size is None else (ALLOC_SAME, delta, size)))
    packed.events(items)
    for w in (records, packed):
        w.tick(1000)
        w.trailer()
    return records, packed


def test_the_numbers_of_an_item_take_seven_bits_a_byte():
    assert [len(events_number(v)) for v in (0, 127, 128, (1 << 14) - 1, 1 << 14)] == [
        1, 1, 2, 2, 3]
    assert len(events_number((1 << 56) - 1)) == 8 and len(events_number(1 << 56)) == 9
    assert events_number(0) == b"\x01" and events_number(1) == b"\x03"
    assert events_items(events_payload([(-3, None), (1 << 60, 7)])) == [(-3, None), (1 << 60, 7)]


def test_an_events_bin_reads_as_the_records_it_stands_for():
    records, packed = _streams(ITEMS)
    assert len(packed.data) < len(records.data) - 2 * len(ITEMS)
    want, got = read_all(records.data), read_all(packed.data)
    assert not want.error and not got.error
    assert snapshot(got) == snapshot(want)
    assert got.records == want.records  # each item counts as one record
    live = sorted((a, s) for a, s, _sid, _n in got.live_allocations())
    assert live == [(0x20, (1 << 62) - 1), (0x5555_0000_0040, 1 << 40),
                    (0xFFFF_FFFF_FFFF_FFF0, 128)]
    assert (got.total_allocations, got.total_frees) == (1 + 7, 1 + 4)


@pytest.mark.parametrize("cut", range(1, 24))
def test_a_bin_cut_short_is_read_once_whole(cut):
    """Fed in two pieces, cut inside the bin: nothing of it counts until the rest comes."""
    records, packed = _streams(ITEMS)
    end = packed.record_ends[-3]  # the EVENTS record's end
    reader = StreamReader()
    reader.feed(packed.data[: end - cut])
    assert reader.total_allocations == 1 and not reader.error
    reader.feed(packed.data[end - cut :])
    reader.finish()
    assert snapshot(reader) == snapshot(read_all(records.data))


def _damaged(payload: bytes, *, format: int = 9, first: bool = True, **header) -> bytes:
    w = StreamWriter(format=format, **header)
    if first:
        _program(w)
    w.record(EVENTS, payload)
    return w.data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # an item whose number says it is longer than what is left of the bin
        (_damaged(events_payload([(16, 100)]) + b"\x08"), "EVENTS item cut short"),
        (_damaged(events_payload([(16, None)])[:0] + b"\x03"), "EVENTS item cut short"),
        (_damaged(b"\x00\x01\x02"), "EVENTS item cut short"),
        (_damaged(events_payload([(16, 100)]), first=False), "EVENTS ALLOC before any ALLOC"),
        (_damaged(events_payload([(16, None)]), first=False), "EVENTS FREE before any FREE"),
        (_damaged(events_payload([(16, 1 << 63)])), "bad field in EVENTS record"),
        (_damaged(events_payload([(16, 100)]), first=False, sample_bytes=1 << 19),
         "EVENTS in a sampled"),
        (_damaged(events_payload([(16, 100)]), format=8), "unknown record type"),
        (_damaged(events_payload([(16, None)] * 256)), "EVENTS bin too long"),
    ],
    ids=["size-cut", "alloc-without-size", "long-number-cut", "no-alloc-before",
         "no-free-before", "size-too-big", "sampled", "format-8", "too-long"],
)
def test_a_damaged_bin_counts_for_nothing(data, message):
    reader = StreamReader()
    with pytest.raises(CaptureError, match=message):
        reader.feed(data)
    assert reader.total_allocations <= 1  # the full ALLOC before it, nothing of the bin


@given(payload=st.binary(max_size=255))
def test_any_bin_reads_whole_or_is_refused_whole(payload: bytes) -> None:
    """Any bytes as a bin after the program's first ALLOC and FREE: the reader takes every
    item the format's own decoder finds, or refuses the bin and counts none of it."""
    try:
        items = events_items(payload)
        sizes = [size for _delta, size in items if size is not None]
        valid = all(size < 1 << 63 for size in sizes)
    except ValueError:
        valid = False
    reader = StreamReader()
    if valid:
        reader.feed(_damaged(payload))
        assert reader.total_allocations == 1 + len(sizes)
        if 10 + sum(sizes) < 1 << 63:  # (a sum beyond the reader's 64-bit counters aside)
            assert reader.total_allocated_bytes == 10 + sum(sizes)
    else:
        with pytest.raises(CaptureError):
            reader.feed(_damaged(payload))
        assert (reader.total_allocations, reader.total_allocated_bytes) == (1, 10)
