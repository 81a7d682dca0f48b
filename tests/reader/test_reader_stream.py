"""Streaming, truncation and fuzzing: any input gives CaptureError or a partial result."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memtrace_core.reader import CaptureError, StreamReader
from tests.reader.reader_helpers import read_all, snapshot
from tests.streamgen import sample_stream


def test_chunked_feed_gives_identical_results() -> None:
    w = sample_stream()
    whole = snapshot(read_all(w.data))
    rng = random.Random(3)
    for _ in range(30):
        chunks = [rng.choice([1, 2, 3, 7, 50, 333, 4096]) for _ in range(rng.randint(1, 400))]
        assert snapshot(read_all(w.data, chunks)) == whole
    assert snapshot(read_all(w.data, [1] * len(w.data))) == whole


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(st.integers(0, 600), max_size=60))
def test_chunked_feed_hypothesis(chunks: list[int]) -> None:
    w = sample_stream(seed=5, n=150)
    assert snapshot(read_all(w.data, chunks)) == snapshot(read_all(w.data))


def test_feed_returns_records_decoded() -> None:
    w = sample_stream(n=50)
    r = StreamReader()
    half = w.record_ends[10] + 3  # inside record 12
    assert r.feed(w.data[:half]) == 11
    assert r.feed(w.data[half:]) == len(w.record_ends) - 11
    assert r.records == len(w.record_ends)


def test_truncated_stream_reads_up_to_last_complete_record() -> None:
    w = sample_stream(n=200, trailer=True)
    data = w.data
    ends = [8, *w.record_ends]
    rng = random.Random(11)
    cuts = sorted(set(rng.sample(range(8, len(data)), 120)) | set(ends[:5]) | {len(data) - 1})
    for cut in cuts:
        r = read_all(data[:cut])
        last = max(e for e in ends if e <= cut)
        assert r.truncated == (cut != last), cut
        assert not r.complete
        assert snapshot(r) == snapshot(read_all(data[:last]))
        assert r.records == ends.index(last)


def test_corruption_keeps_state_of_last_good_record() -> None:
    w = sample_stream(n=100)
    good = w.record_ends[40]
    data = w.data[:good] + b"\xc1" + w.data[good:]
    r = StreamReader()
    with pytest.raises(CaptureError, match=f"corrupt capture at byte {good}"):
        r.feed(data)
    assert snapshot(r) == snapshot(read_all(w.data[:good]))
    assert r.error and "at byte" in r.error
    with pytest.raises(CaptureError):
        r.feed(b"\x90")  # a failed reader stays failed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"NOTATRACEFILE", "not a memtrace capture"),
        (b"MEMTRACX", "not a memtrace capture"),
        (b"MEMTRACE\x92\x04\x80", "first record is not HEADER"),
        (b"MEMTRACE\x92\x00\x81\xa6format\x0a", "unsupported format version 10"),
        (b"MEMTRACE\x92\x00\x81\xa6format\x02\x93\x0c\x90\x90", "unknown record type"),
        (b"MEMTRACE\x92\x00\x81\xa6format\x03\x93\x0c\x90\x90", "MAPS_DELTA before any MAPS"),
        (b"MEMTRACE\x92\x00\x81\xa6format\x03\x92\x07\x90\x93\x0c\x91\x05\x90",
         "not exactly one"),
        (b"MEMTRACE\x92\x00\x81\xa6format\x03\x92\x07\x90\x93\x0c\x90\x91\x01",
         "bad MAPS_DELTA"),
        (b"MEMTRACE\x92\x00\x81\xa6format\x01\x91\x0a", "unknown record type"),
        (b"MEMTRACE\x92\x00\x81\xa6format\x01\xc1", "not a msgpack array"),
        (b"MEMTRACE" + b"\x92\x00\x81\xa6format\x01" * 2, "second HEADER"),
        (b"MEMTRACE\x92\x00\x81\xa6format\x01\x97\x04\x01\x01\x10\x08\x05\x00", "undefined"),
        (b"MEMTRACE\x92\x00\x81\xa6format\x01\x93\x09\xcb" + bytes(8) + b"\xc0\x91\x08",
         "data after TRAILER"),
        (b"MEMTRACE\x92\x00\x81\xa6format\x01\x96\x02\xce\x00\x20\x00\x00\x00\x01\x01\xc2",
         "PYNODE id out of range"),
        (b"MEMTRACE\x92\x00\x81\xa6format\x01\x96\x02\x01\x05\x01\x01\xc2",
         "PYNODE parent is not defined"),
        (b"MEMTRACE\x92\x00\x81\xa6format\x01" + b"\x96\x02\x01\x00\x01\x01\xc2" * 2,
         "PYNODE defined twice"),
        (b"MEMTRACE\x92\x00\x81\xa6format\x01\x95\x05\x01\x01\x10\xa1x", "bad field in FREE"),
    ],
)
def test_bad_streams_raise_capture_error(data: bytes, message: str) -> None:
    with pytest.raises(CaptureError, match=message):
        StreamReader().feed(data)


def test_deep_nesting_in_a_rare_record_is_an_error_not_a_crash() -> None:
    header = b"MEMTRACE\x92\x00\x81\xa6format\x01"
    deep = b"\x92\x07" + b"\x91" * 100_000 + b"\x90"
    with pytest.raises(CaptureError, match="nested too deeply"):
        StreamReader().feed(header + deep)


def test_huge_declared_lengths_wait_for_data() -> None:
    header = b"MEMTRACE\x92\x00\x81\xa6format\x01"
    huge = (
        b"\x92\x07\xdd\xff\xff\xff\xff",  # MAPS with a 4G-element list
        b"\x92\x01\xdb\xff\xff\xff\xff",  # CODE with a 4 GB string
        b"\xdd\xff\xff\xff\xff",  # a record of 4G fields
    )
    for tail in huge:
        r = StreamReader()
        r.feed(header + tail + b"\x00" * 100)
        r.finish()
        assert r.truncated and r.records == 1


def _poke(r: StreamReader) -> None:
    """Touch every accessor: none may crash on whatever state fuzzing left."""
    snapshot(r)
    r.take_changed()
    assert isinstance(r.allocator_stats, dict) and isinstance(r.size_histogram, list)


VALID = sample_stream(seed=9, n=120).data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_fuzz_random_bytes_after_magic(data: bytes) -> None:
    r = StreamReader()
    try:
        r.feed(b"MEMTRACE" + data)
    except CaptureError:
        pass
    r.finish()
    _poke(r)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flips=st.lists(st.tuples(st.integers(8, len(VALID) - 1), st.integers(0, 7)), min_size=1,
                   max_size=6),
    cut=st.integers(8, len(VALID)),
    chunk=st.integers(1, 5000),
)
def test_fuzz_bit_flipped_and_truncated_streams(flips: list[tuple[int, int]], cut: int,
                                                chunk: int) -> None:
    data = bytearray(VALID)
    for pos, bit in flips:
        data[pos] ^= 1 << bit
    data = bytes(data[:cut])
    r = StreamReader()
    try:
        for i in range(0, len(data), chunk):
            r.feed(data[i : i + chunk])
    except CaptureError:
        assert r.error
    r.finish()
    _poke(r)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(min_size=1, max_size=200), at=st.integers(0, len(VALID)))
def test_fuzz_inserted_garbage(data: bytes, at: int) -> None:
    at = max(at, 8)
    r = StreamReader()
    try:
        r.feed(VALID[:at] + data + VALID[at:])
    except CaptureError:
        pass
    r.finish()
    _poke(r)
