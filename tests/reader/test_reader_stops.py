"""Reading with stops (`view`'s timeline, read_capture_at): stopping after a TICK and
resuming with the kept bytes changes nothing in what is read, wherever the stops and the
chunk ends fall; peak_snapshot() holds every stack's exact figures at the peak; a reader that
decodes without the GIL reads the same while another thread runs."""

from __future__ import annotations

import struct
import sys
import threading
from pathlib import Path

import msgpack
import pytest

from memtrace_core.model import timeline as timeline_mod
from memtrace_core.model.timeline import peak_instant, read_with_timeline
from memtrace_core.reader import StreamReader, read_capture, replay
from tests.reader.reader_helpers import read_all, snapshot
from tests.streamgen import TICK, compress, sample_stream

STREAM = sample_stream(seed=11, n=6000)
DATA = STREAM.data


def _stopping_everywhere(chunks: list[bytes]) -> tuple[StreamReader, list[tuple]]:
    """Feed the chunks, stopping after every TICK: (reader, the state seen at each stop)."""
    reader = StreamReader()
    reader.stop_at(0)
    seen = []
    for chunk in chunks:
        data = chunk
        while True:
            reader.feed(data)
            data = b""
            if not reader.stopped:
                break
            seen.append((reader.last_time_us, reader.records, reader.bytes_read,
                         reader.heap_bytes))
            reader.stop_at(reader.last_time_us + 1)
    reader.finish()
    return reader, seen


def _ticks_of(stream) -> list[tuple[int, int, int]]:
    """(time, records so far, bytes so far) right after each TICK, from the generator's own
    records (independent of the reader)."""
    out = []
    for i, (chunk, end) in enumerate(zip(stream.chunks[1:], stream.record_ends, strict=True)):
        record = msgpack.unpackb(chunk)
        if record[0] == TICK:
            out.append((record[1], i + 1, end))
    return out


@pytest.mark.parametrize("size", [97, 4096, len(DATA)])
def test_stops_change_nothing_read_and_resume_where_they_stopped(size: int) -> None:
    chunks = [DATA[i:i + size] for i in range(0, len(DATA), size)]
    reader, seen = _stopping_everywhere(chunks)
    whole = read_all(DATA)
    assert snapshot(reader) == snapshot(whole)
    assert reader.bytes_read == whole.bytes_read == len(DATA)
    assert not reader.truncated
    # each stop is right after its TICK: the records and bytes read up to it, exactly
    ticks = _ticks_of(STREAM)
    assert len(seen) == len(ticks) > 20
    for (t, records, read, _heap), (tick_t, tick_records, tick_end) in zip(seen, ticks,
                                                                          strict=True):
        assert (t, records, read) == (tick_t, tick_records, tick_end)


def test_a_stop_then_new_bytes_keeps_the_rest_before_them() -> None:
    """After a stop, feeding more data (not b"") decodes the kept rest first."""
    half = len(DATA) // 2
    reader = StreamReader()
    reader.stop_at(0)
    reader.feed(DATA[:half])
    assert reader.stopped
    reader.stop_at(1 << 62)
    reader.feed(DATA[half:])
    reader.finish()
    assert snapshot(reader) == snapshot(read_all(DATA))
    assert reader.bytes_read == len(DATA)


def test_a_truncated_stream_read_with_stops_is_truncated() -> None:
    cut = DATA[: STREAM.record_ends[-40] + 3]  # three bytes into a record
    reader, _seen = _stopping_everywhere([cut])
    assert reader.truncated
    assert snapshot(reader) == snapshot(read_all(cut))


def test_peak_snapshot_is_every_stack_at_the_peak() -> None:
    reader = read_all(DATA)
    pairs = struct.unpack(f"{2 * reader.n_stacks}q", reader.peak_snapshot())
    assert pairs == tuple(x for sid in range(reader.n_stacks)
                          for x in reader.stack_counters(sid)[4:6])
    assert sum(pairs[0::2]) == reader.peak_bytes
    assert sum(pairs[1::2]) == reader.peak_allocations
    assert peak_instant(reader).snapshot == reader.peak_snapshot()


@pytest.mark.parametrize("packed", [False, True], ids=["raw", "zstd"])
def test_timeline_reading_without_the_gil_reads_the_same(tmp_path: Path, packed: bool) -> None:
    """read_with_timeline(share_cpu=True) while another thread keeps running Python: the
    same reader as read_capture, and the same instants as without sharing."""
    path = tmp_path / "s.mtrace"
    path.write_bytes(compress(DATA, flush_every=2000) if packed else DATA)
    stop = threading.Event()
    spins = [0]
    intervals: set[float] = set()
    before = sys.getswitchinterval()

    def busy() -> None:
        while not stop.is_set():
            spins[0] += 1

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        shared, shared_timeline = read_with_timeline(
            path, share_cpu=True,
            while_reading=lambda _reader: intervals.add(sys.getswitchinterval()))
    finally:
        stop.set()
        thread.join()
    plain, plain_timeline = read_with_timeline(path)
    assert not shared.decode_without_gil  # only for that reading
    # the GIL changes hands sooner while the decoder shares it, and only then
    assert intervals == {timeline_mod.SHARED_SWITCH_S}
    assert timeline_mod.SHARED_SWITCH_S < before == sys.getswitchinterval()
    assert snapshot(shared) == snapshot(plain) == snapshot(read_capture(path))
    assert shared_timeline.points == plain_timeline.points
    assert shared_timeline.peak == plain_timeline.peak
    assert spins[0] > 0


def test_replay_to_an_instant_gives_that_instant(tmp_path: Path) -> None:
    """read_capture_at's path: a stop, then nothing more: the state right after the TICK."""
    path = tmp_path / "s.mtrace"
    path.write_bytes(compress(DATA, flush_every=2000))
    t, records, end = _ticks_of(STREAM)[15]
    reader = StreamReader()
    reader.stop_at(t)
    replay(path, reader, lambda _r: None)
    assert (reader.last_time_us, reader.records, reader.bytes_read) == (t, records, end)
    assert snapshot(reader) == snapshot(read_all(DATA[:end]))
