"""The one capture writer (memtrace_core/capture/writer.h), through its Python face: what it
writes reads back as the plain stream it was given; its flush policy (whole blocks at once,
the rest at most one interval late, everything at a flush or the end); its lock; a writer
killed mid-run leaves a capture that reads up to its last flush; the `live -o` tee flushes
while the stream idles."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from memtrace_core.capture import FLUSH_INTERVAL_S, CaptureWriter, take_writer_lock, writer_alive
from memtrace_core.capture._writer import BLOCK_BYTES
from memtrace_core.model import Session
from memtrace_core.model.feed import PipeFeed
from memtrace_core.reader import StreamReader, capture_stream, read_capture
from tests.reader.reader_helpers import read_all, snapshot
from tests.streamgen import sample_stream

N_RECORDS = 80000  # a stream of several blocks
STREAM = sample_stream(seed=11, n=N_RECORDS)
RAW = STREAM.data
OUT_CAP = 256 << 10  # compressed bytes the writer holds before writing (writer.h)


def readable(path: Path) -> bytes:
    """The plain stream a reader gets from the file as it is now."""
    data = path.read_bytes()
    assert data.startswith(b"MEMTRACZ")
    return zstandard.ZstdDecompressor().decompressobj().decompress(data[8:])


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never came"
        time.sleep(0.01)


def test_written_in_pieces_reads_as_the_plain_stream(tmp_path: Path) -> None:
    path = tmp_path / "w.mtrace"
    writer = CaptureWriter.create(str(path))
    rng = random.Random(3)
    pos = 0
    while pos < len(RAW):
        n = rng.choice([0, 1, 7, 300, 5000, 70000])
        writer.write(memoryview(RAW)[pos : pos + n])
        pos += n
    writer.close()
    assert b"".join(capture_stream(path)) == RAW
    r = read_capture(path)
    assert r.complete and r.error is None
    assert snapshot(r) == snapshot(read_all(RAW))
    with pytest.raises(ValueError, match="finished"):
        writer.write(b"more")


def test_flush_policy(tmp_path: Path) -> None:
    """Within the interval nothing new reaches the file (blocks are closed every BLOCK_BYTES
    of stream, in memory) until the compressed output fills its buffer; a flush shows all."""
    path = tmp_path / "p.mtrace"
    writer = CaptureWriter.create(str(path), flush_interval=3600.0)
    small = RAW[: 3 * BLOCK_BYTES + 1000]  # several blocks closed, none written
    writer.write(small)
    assert writer.pending and readable(path) == b""
    writer.flush()
    assert not writer.pending and readable(path) == small
    noise = random.Random(5).randbytes(OUT_CAP * 2)  # incompressible: fills the buffer
    writer.write(noise)
    shown = readable(path)
    assert (small + noise).startswith(shown) and len(shown) >= len(small) + OUT_CAP // 2
    assert writer.pending
    writer.close()
    assert readable(path) == small + noise


def test_blocks_are_closed_every_block_bytes(tmp_path: Path) -> None:
    """The frame's blocks each hold at most BLOCK_BYTES of stream (a compression choice:
    smaller blocks compress our streams better), however the stream was written."""
    path = tmp_path / "b.mtrace"
    writer = CaptureWriter.create(str(path), flush_interval=3600.0)
    writer.write(RAW)
    writer.close()
    data = path.read_bytes()[8:]
    sizes = block_content_sizes(data)
    assert sum(sizes) == len(RAW) and max(sizes) <= BLOCK_BYTES
    assert len(sizes) >= len(RAW) // BLOCK_BYTES


def block_content_sizes(frame: bytes) -> list[int]:
    """The stream bytes each block of a zstd frame decompresses to (RFC 8878)."""
    dctx = zstandard.ZstdDecompressor()
    params = zstandard.get_frame_parameters(frame)
    pos = zstandard.frame_header_size(frame)
    sizes = []
    total = b""
    while True:
        header = int.from_bytes(frame[pos : pos + 3], "little")
        last, kind, size = header & 1, (header >> 1) & 3, header >> 3
        end = pos + 3 + (1 if kind == 1 else size)
        # the frame up to and including this block, ended so it decompresses alone
        out = dctx.decompressobj().decompress(frame[:end])
        sizes.append(len(out) - len(total))
        total = out
        pos = end
        if last:
            break
    assert params.content_size in (0, zstandard.CONTENTSIZE_UNKNOWN)
    return sizes


def test_flush_by_time_on_write_and_when_idle(tmp_path: Path) -> None:
    path = tmp_path / "t.mtrace"
    writer = CaptureWriter.create(str(path), flush_interval=0.05)
    first, second = RAW[:3000], RAW[3000:6000]
    time.sleep(0.06)
    writer.write(first)  # the interval is up since the open: out at once
    assert not writer.pending and readable(path) == first
    writer.write(second)
    time.sleep(0.06)
    writer.poll()  # nothing came for an interval: what waits goes out
    assert readable(path) == first + second
    writer.close()


def test_default_interval() -> None:
    assert FLUSH_INTERVAL_S == 0.1


def test_the_writer_holds_the_lock_while_it_writes(tmp_path: Path) -> None:
    path = tmp_path / "l.mtrace"
    writer = CaptureWriter.create(str(path))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert writer_alive(fd)
        writer.close()
        assert not writer_alive(fd)
        early = os.open(path, os.O_WRONLY)
        take_writer_lock(early)  # a writer that opened its file before writing
        assert writer_alive(fd)
        os.close(early)
        assert not writer_alive(fd)
    finally:
        os.close(fd)


def test_unwritable_file_is_an_os_error(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "ro", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(OSError, match="cannot write the capture"):
            CaptureWriter(fd)
    finally:
        os.close(fd)


KILLED = """\
import sys, time
from memtrace_core.capture import CaptureWriter
from tests.streamgen import sample_stream

raw = sample_stream(seed=11, n=int(sys.argv[3])).data
cut = int(sys.argv[2])
writer = CaptureWriter.create(sys.argv[1], flush_interval=0.05)
writer.write(raw[:cut])
while writer.pending:  # until a flush by time took it
    time.sleep(0.01)
    writer.poll()
writer.write(raw[cut:cut + 4000])  # never flushed: no poll, no write after it
print("flushed", flush=True)
time.sleep(60)
"""


def test_a_writer_killed_mid_run_leaves_its_last_flush(tmp_path: Path) -> None:
    path = tmp_path / "k.mtrace"
    cut = STREAM.record_ends[len(STREAM.record_ends) // 2]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(path), str(cut), str(N_RECORDS)],
                            cwd=root,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "flushed\n"
        assert writer_alive_at(path)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert not writer_alive_at(path)
    assert b"".join(capture_stream(path)) == RAW[:cut]
    r = read_capture(path)
    assert not r.complete and r.error is None
    assert snapshot(r) == snapshot(read_all(RAW[:cut]))


def writer_alive_at(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        return writer_alive(fd)
    finally:
        os.close(fd)


def test_live_tee_shows_the_stream_while_it_idles(tmp_path: Path) -> None:
    """`live -o`: the tee is the same writer; a stream that pauses is in the file within the
    flush interval, not at the end."""
    path = tmp_path / "tee.mtrace"
    read_fd, write_fd = os.pipe()
    feed = PipeFeed(read_fd, Session(StreamReader(), live=True), tee_path=str(path))
    feed.start()
    try:
        half = STREAM.record_ends[len(STREAM.record_ends) // 2]
        os.write(write_fd, RAW[:half])
        wait_until(lambda: readable(path) == RAW[:half])
        os.write(write_fd, RAW[half:])
    finally:
        os.close(write_fd)
        feed.eof.wait(30)
        feed.stop()
    assert feed.eof.is_set()
    assert snapshot(read_capture(path)) == snapshot(read_all(RAW))


def _streamed(data: bytes, **params: object) -> int:
    """Bytes zstd makes of data in BLOCK_BYTES blocks, one frame, as the writer cuts it."""
    c = (zstandard.ZstdCompressor(compression_params=zstandard.ZstdCompressionParameters(
        **params)) if params else zstandard.ZstdCompressor(level=2)).compressobj()
    out = 0
    for i in range(0, len(data), BLOCK_BYTES):
        out += len(c.compress(data[i:i + BLOCK_BYTES]))
        out += len(c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    return out + len(c.flush())


def test_a_fast_sampled_stream_goes_on_at_level_2(tmp_path: Path) -> None:
    """A sampled capture's compressor searches harder (writer.h) while its stream is slow; one
    that comes at MT_CAPTURE_SAMPLED_FAST_RATE or faster (malloc-heavy C code; here the
    stream's first 4 KiB, then the rest at once) ends that frame before the write that
    proves it and goes on at level 2 in a new one. A short stream (under 64 KiB) stays one
    frame. Both read back as given."""
    from tests.capture.zstd_frames import frames

    fast = tmp_path / "fast.mtrace"
    writer = CaptureWriter.create(str(fast), sampled=True)
    writer.write(RAW[:4096])
    writer.write(RAW[4096:])
    writer.close()
    assert b"".join(capture_stream(fast)) == RAW
    first, rest = frames(fast.read_bytes())
    assert sum(block_content_sizes(fast.read_bytes()[first.start:first.end])) == 4096
    size = rest.end - rest.start
    level2 = _streamed(RAW[4096:])
    harder = _streamed(RAW[4096:], strategy=zstandard.STRATEGY_LAZY, window_log=20,
                       hash_log=16, chain_log=16, search_log=6, min_match=4)
    assert abs(size - level2) < 0.01 * level2 and abs(size - harder) > 0.05 * harder, (
        size, level2, harder)

    short = tmp_path / "short.mtrace"
    writer = CaptureWriter.create(str(short), sampled=True)
    writer.write(RAW[:30000])
    writer.close()
    assert b"".join(capture_stream(short)) == RAW[:30000]
    (frame,) = frames(short.read_bytes())
    size = frame.end - frame.start
    assert size < 0.95 * _streamed(RAW[:30000]), size  # harder than level 2
