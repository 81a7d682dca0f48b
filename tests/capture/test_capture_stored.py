"""The capture writer stores what compression does not pay for (writer.h, docs/FORMAT.md
"Layout"): a fast stream that shrinks less than STORE_RATIO goes into zstd frames of Raw
blocks, a probe compresses again now and then, a compressible stream stays one compressed
frame. Checked on real traced processes (a gcc-built library through ctypes, a Python
workload) with exact counts, against the same stream compressed, cut off, killed, followed,
and on the writer's Python face for the exact layout of stored frames and probes."""

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

from memtrace_core.capture import CaptureWriter, take_writer_lock
from memtrace_core.capture._writer import (
    BLOCK_BYTES,
    JUDGE_BYTES,
    PROBE_BYTES,
    PROBE_MAX_BYTES,
    STORE_RATIO,
)
from memtrace_core.reader import StreamReader, capture_stream, read_capture
from memtrace_core.reader.follow import CaptureFollower
from memtrace_core.reader.names_section import stream_end
from tests.capture.zstd_frames import RAW, Frame, frames
from tests.cli import MEMTRACE, run_memtrace
from tests.reader.reader_helpers import snapshot
from tests.tracer import tracer_support as ts

MB = 1 << 20
REPO = Path(__file__).resolve().parents[2]
BENCH_PURE_PYTHON = REPO / "benchmarks" / "workloads" / "pure_python.py"

PROGRAM = """\
import ctypes, os, sys
lib = ctypes.CDLL(os.environ["MT_STORE_LIB"])
lib.mts_random.argtypes = [ctypes.c_long, ctypes.c_uint]
lib.mts_random.restype = ctypes.c_long
lib.mts_steady.argtypes = [ctypes.c_long]
lib.mts_steady.restype = ctypes.c_long


def work(n_random, n_steady):
    r = lib.mts_random(n_random, 1)  # @random
    s = lib.mts_steady(n_steady)  # @steady
    print(r, s)


work(int(sys.argv[1]), int(sys.argv[2]))
"""

FOREVER = """\
import ctypes, os, sys
lib = ctypes.CDLL(os.environ["MT_STORE_LIB"])
lib.mts_random.argtypes = [ctypes.c_long, ctypes.c_uint]
lib.mts_random.restype = ctypes.c_long


def work():
    for k in range(1, 100000):
        lib.mts_random(100000, k)  # @random
        print(k, flush=True)


work()
"""

PAUSED = """\
import ctypes, os, time
lib = ctypes.CDLL(os.environ["MT_STORE_LIB"])
lib.mts_random.argtypes = [ctypes.c_long, ctypes.c_uint]
lib.mts_random.restype = ctypes.c_long


def work():
    for k in range(12):
        lib.mts_random(150000, k)  # @random
        time.sleep(0.1)


work()
"""


@pytest.fixture(scope="module")
def store_lib(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mtstore") / "libmtstore.so"
    source = REPO / "tests" / "cfixtures" / "mtstore.c"
    proc = subprocess.run(["gcc", "-g", "-O1", "-fPIC", "-shared", "-Wall", str(source),
                           "-o", str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"gcc failed:\n{proc.stderr}", pytrace=False)
    return out


def marker(source: str, name: str) -> int:
    """The line of `# @name` in source."""
    return next(i for i, text in enumerate(source.splitlines(), 1) if text.endswith(f"# @{name}"))


def env_for(mt, lib: Path) -> dict[str, str]:
    return dict(mt.env, MT_STORE_LIB=str(lib))


def trace(mt, directory: Path, lib: Path, source: str, *args: str) -> tuple[Path, str]:
    (directory / "prog.py").write_text(source)
    capture = directory / "prog.mtrace"
    proc = run_memtrace("run", "-o", str(capture), "--force", "prog.py", *args,
                        cwd=directory, env=env_for(mt, lib), timeout=300, text=True)
    assert proc.returncode == 0, proc.stderr
    return capture, proc.stdout


def content(frame: Frame, data: bytes) -> int:
    """Stream bytes one complete frame holds."""
    out = zstandard.ZstdDecompressor().decompressobj().decompress(data[frame.start : frame.end])
    return len(out)


def check_stored_frames(layout: list[Frame], size: int) -> None:
    """Stored frames are Raw blocks of at most 128 KiB ended by an empty last block; the
    frames follow each other to the end of the file."""
    for frame in layout:
        assert frame.end, "every frame of a finished capture is ended"
        if frame.stored:
            assert frame.blocks[-1] == (RAW, 0)
            assert all(0 < n <= 128 << 10 for _, n in frame.blocks[:-1])
            assert frame.end - frame.start == 6 + 3 * len(frame.blocks) + frame.raw_bytes
    assert [f.start for f in layout[1:]] == [f.end for f in layout[:-1]]
    assert layout[-1].end == size


@pytest.fixture(scope="module")
def random_run(tmp_path_factory, mt, store_lib):
    """A malloc-heavy program: two million allocations of random sizes, stored
    (a probe after 8 MiB of it: the stored stretch is not the last frame)."""
    directory = tmp_path_factory.mktemp("random")
    capture, out = trace(mt, directory, store_lib, PROGRAM, "2000000", "0")
    return capture, int(out.split()[0])


def test_stored_capture_reads_exactly_as_the_same_stream_compressed(random_run, tmp_path):
    capture, random_bytes = random_run
    data = capture.read_bytes()
    layout = frames(data)
    check_stored_frames(layout, len(data))
    stream = b"".join(capture_stream(capture))
    stored = sum(f.raw_bytes for f in layout if f.stored)
    assert stored >= 0.6 * len(stream), (stored, len(stream))
    assert not layout[0].stored and any(f.stored for f in layout)
    # the same plain stream, every block compressed
    compressed = tmp_path / "compressed.mtrace"
    writer = CaptureWriter.create(str(compressed), store_ratio=0)
    writer.write(stream)
    writer.close()
    assert len(frames(compressed.read_bytes())) == 1
    assert b"".join(capture_stream(compressed)) == stream
    stored_reader, compressed_reader = read_capture(capture), read_capture(compressed)
    assert stored_reader.complete and stored_reader.error is None
    assert snapshot(stored_reader) == snapshot(compressed_reader)
    at = ts.totals_at(stored_reader, "work", marker(PROGRAM, "random"))
    assert at.as_expect() == ts.Expect(2000000, random_bytes, 0, 0)
    # what storing costs on disk: the stored capture is bigger, by at most what was stored
    # and its block headers
    assert len(compressed.read_bytes()) < len(data) < len(stream) * 1.001 + 8


def test_python_stream_stays_one_compressed_frame(mt, tmp_path):
    capture = tmp_path / "py.mtrace"
    proc = run_memtrace("run", "-o", str(capture), "--force", str(BENCH_PURE_PYTHON),
                        cwd=tmp_path, env=dict(mt.env, MT_BENCH_SCALE="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = capture.read_bytes()
    stream = b"".join(capture_stream(capture))
    layout = frames(data)
    assert len(stream) >= 3 * JUDGE_BYTES  # judged several times
    # one frame, never the writer's stored frame; zstd itself writes a flush too small to
    # shrink (a few bytes at close, an empty last block) as a Raw block inside it
    assert len(layout) == 1 and not layout[0].stored
    assert layout[0].raw_bytes * 100 < len(stream), layout[0].blocks
    assert len(data) * 5 < len(stream)
    assert read_capture(capture).complete


def test_a_probe_brings_compression_back(mt, store_lib, tmp_path):
    n_random, n_steady = 300000, 4000000
    capture, out = trace(mt, tmp_path, store_lib, PROGRAM, str(n_random), str(n_steady))
    data = capture.read_bytes()
    layout = frames(data)
    check_stored_frames(layout, len(data))
    stream = b"".join(capture_stream(capture))
    # compressed, stored until the first probe, then compressed to the end
    assert [f.stored for f in layout] == [False, True, False]
    assert layout[1].raw_bytes == PROBE_BYTES
    first, last = content(layout[0], data), content(layout[2], data)
    assert first + PROBE_BYTES + last == len(stream)
    # one window judged (two if the interpreter's start-up made the first one slow)
    assert JUDGE_BYTES <= first < 2 * JUDGE_BYTES + BLOCK_BYTES + (64 << 10)
    assert last > 4 * MB and (layout[2].end - layout[2].start) * 50 < last
    reader = read_capture(capture)
    random_bytes, steady_bytes = map(int, out.split())
    line = marker(PROGRAM, "random")
    assert ts.totals_at(reader, "work", line).as_expect() == ts.Expect(n_random, random_bytes,
                                                                         0, 0)
    line = marker(PROGRAM, "steady")
    assert ts.totals_at(reader, "work", line).as_expect() == ts.Expect(n_steady, steady_bytes,
                                                                         0, 0)


def test_truncated_stored_capture_reads_up_to_the_cut(random_run, tmp_path):
    capture, _ = random_run
    data = capture.read_bytes()
    stream = b"".join(capture_stream(capture))
    layout = frames(data)
    stored = next(f for f in layout if f.stored)
    before = content(layout[0], data)
    block_starts = [stored.start + 6]
    for _, n in stored.blocks:
        block_starts.append(block_starts[-1] + 3 + n)
    cuts = {
        stored.start + 3: before,  # inside the stored frame's magic
        block_starts[0]: before,  # after its header
        block_starts[5]: before + sum(n for _, n in stored.blocks[:5]),  # at a block's end
        block_starts[5] + 2: before + sum(n for _, n in stored.blocks[:5]),  # in a header
        block_starts[5] + 3 + 1000: before + sum(n for _, n in stored.blocks[:5]),  # in a block
        stored.end + 100: before + stored.raw_bytes,  # in the probe after it
    }
    for cut, complete in cuts.items():
        path = tmp_path / f"cut{cut}.mtrace"
        path.write_bytes(data[:cut])
        got = b"".join(capture_stream(path))
        # every complete block, and of a stored block being cut, what of it is there
        assert stream.startswith(got) and complete <= len(got) <= complete + 1000, cut
        reader = read_capture(path)
        assert not reader.complete and reader.error is None, cut
        assert reader.records > 0


def test_killed_while_storing_reads_up_to_its_last_flush(mt, store_lib, tmp_path):
    (tmp_path / "prog.py").write_text(FOREVER)
    capture = tmp_path / "prog.mtrace"
    proc = subprocess.Popen([*MEMTRACE, "run", "-o", str(capture), "--force", "prog.py"],
                            cwd=tmp_path, env=env_for(mt, store_lib), stdout=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        done = int(proc.stdout.readline())  # a call returned: the capture exists
        while not any(f.stored for f in frames(capture.read_bytes())):
            done = int(proc.stdout.readline())
            assert time.monotonic() < deadline, "never stored"
        time.sleep(0.5)  # the writer's flush interval and the tracer's buffering, twice over
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    reader = read_capture(capture)
    assert not reader.complete and reader.error is None
    at = ts.totals_at(reader, "work", marker(FOREVER, "random"))
    # every call that had returned half a second before the kill is in the capture, exactly
    assert at.count >= done * 100000
    assert at.leaked_count <= 512


def test_follower_reads_a_stored_capture_while_it_is_written(mt, store_lib, tmp_path):
    (tmp_path / "prog.py").write_text(PAUSED)
    capture = tmp_path / "prog.mtrace"
    proc = subprocess.Popen([*MEMTRACE, "run", "-o", str(capture), "--force", "prog.py"],
                            cwd=tmp_path, env=env_for(mt, store_lib))
    try:
        follower = CaptureFollower(str(capture), wait_s=30)
        reader = StreamReader()
        reads = 0
        deadline = time.monotonic() + 120
        while not reader.complete:
            data = follower.read()
            if data:
                reader.feed(data)
                reads += 1
            else:
                assert not follower.frame_ended, "ended at a frame boundary mid-run"
                time.sleep(0.02)
            assert time.monotonic() < deadline, "the follower never saw the end"
        follower.close()
    finally:
        assert proc.wait(timeout=60) == 0
    layout = frames(capture.read_bytes())
    assert sum(f.stored for f in layout) >= 2 and reads >= 5  # it followed, frames came
    reader.finish()
    assert snapshot(reader) == snapshot(read_capture(capture))
    at = ts.totals_at(reader, "work", marker(PAUSED, "random"))
    assert at.count == 12 * 150000


def incompressible(n: int) -> bytes:
    return random.Random(9).randbytes(n)


@pytest.mark.parametrize("piece", ["large", "small"])
def test_probes_double_their_distance(tmp_path, piece):
    """Writer alone: an incompressible stream is judged after one window, stored, probed
    after PROBE_BYTES, 2x, 4x ... of stored stream (large pieces are written straight from
    the caller's buffer, small ones gathered in blocks: the same frames either way)."""
    total = JUDGE_BYTES + BLOCK_BYTES + 7 * PROBE_BYTES + 3 * (JUDGE_BYTES + BLOCK_BYTES)
    data = incompressible(total)
    path = tmp_path / "d.mtrace"
    writer = CaptureWriter.create(str(path), flush_interval=3600.0)
    rng = random.Random(4)
    pos = 0
    while pos < len(data):
        n = (1 << 20) + 12345 if piece == "large" else rng.randrange(1, 20000)
        writer.write(memoryview(data)[pos : pos + n])
        pos += n
        if pos >= JUDGE_BYTES + BLOCK_BYTES:
            assert writer.storing or writer.stored_bytes
    writer.close()
    assert b"".join(capture_stream(path)) == data
    raw = path.read_bytes()
    layout = frames(raw)
    check_stored_frames(layout, len(raw))
    kinds = [f.stored for f in layout]
    assert kinds[:6] == [False, True, False, True, False, True]
    stored = [f.raw_bytes for f in layout if f.stored]
    assert stored[:3] == [PROBE_BYTES, 2 * PROBE_BYTES, 4 * PROBE_BYTES]
    assert 4 * PROBE_BYTES <= PROBE_MAX_BYTES
    assert writer.stored_bytes == sum(stored)
    for frame in layout[0::2]:  # compressed: one judged window each
        assert JUDGE_BYTES <= content(frame, raw) < JUDGE_BYTES + BLOCK_BYTES + 20000


def test_store_ratio_zero_compresses_everything(tmp_path):
    data = incompressible(3 * JUDGE_BYTES)
    path = tmp_path / "z.mtrace"
    writer = CaptureWriter.create(str(path), store_ratio=0)
    writer.write(data)
    assert not writer.storing
    writer.close()
    assert writer.stored_bytes == 0 and len(frames(path.read_bytes())) == 1
    assert b"".join(capture_stream(path)) == data
    assert STORE_RATIO == 3


def test_slow_stream_stays_compressed(tmp_path):
    """A stream that comes slowly (a sampled capture, an idle program) is compressed
    whatever its ratio: compressing it costs next to nothing."""
    data = incompressible(JUDGE_BYTES + 2 * BLOCK_BYTES)
    path = tmp_path / "s.mtrace"
    writer = CaptureWriter.create(str(path))
    piece = BLOCK_BYTES // 2
    for pos in range(0, len(data), piece):
        writer.write(data[pos : pos + piece])
        time.sleep(0.05)  # 1.3 MB/s: below STORE_RATE
    writer.close()
    assert writer.stored_bytes == 0 and len(frames(path.read_bytes())) == 1
    assert b"".join(capture_stream(path)) == data


def test_a_writer_killed_while_storing_leaves_its_last_flush(tmp_path):
    """Writer alone: what was stored and flushed reads back, byte for byte."""
    path = tmp_path / "k.mtrace"
    script = (
        "import sys, time, random\n"
        "from memtrace_core.capture import CaptureWriter\n"
        "data = random.Random(9).randbytes(int(sys.argv[2]))\n"
        "writer = CaptureWriter.create(sys.argv[1], flush_interval=0.05)\n"
        "for pos in range(0, len(data), 5000):\n"
        "    writer.write(data[pos : pos + 5000])\n"
        "assert writer.storing\n"
        "while writer.pending:\n"
        "    time.sleep(0.01)\n"
        "    writer.poll()\n"
        "writer.write(b'never flushed')\n"
        "print('flushed', flush=True)\n"
        "time.sleep(60)\n"
    )
    n = 3 * JUDGE_BYTES + 777
    proc = subprocess.Popen([sys.executable, "-c", script, str(path), str(n)], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "flushed\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert b"".join(capture_stream(path)) == incompressible(n)
    layout = frames(path.read_bytes())
    assert layout[-1].stored and not layout[-1].end  # cut off inside its stored frame


def test_a_follower_at_a_frame_end_waits_while_the_writer_holds_its_lock(random_run, tmp_path):
    """Frames end mid-run where the writer switches: a follower that read exactly up to a
    frame's end is not at the end of the capture while the writer's lock is held."""
    capture, _ = random_run
    data = capture.read_bytes()
    layout = frames(data)
    path = tmp_path / "growing.mtrace"
    path.write_bytes(data[: layout[1].end])  # up to the end of the first stored frame
    writer_fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    take_writer_lock(writer_fd)
    try:
        follower = CaptureFollower(str(path))
        reader = StreamReader()
        while got := follower.read():  # all there is, a piece at a time
            reader.feed(got)
        assert follower.read() == b"" and not follower.frame_ended
        os.write(writer_fd, data[layout[1].end :])
        while not reader.complete:
            got = follower.read()
            assert got, "the rest of the capture was written"
            reader.feed(got)
        assert not follower.frame_ended
    finally:
        os.close(writer_fd)
    assert follower.read() == b"" and follower.frame_ended  # the end, and the lock is free
    follower.close()
    reader.finish()
    assert snapshot(reader) == snapshot(read_capture(capture))


def test_native_stored_capture_keeps_its_names_section_after_the_frames(mt, store_lib,
                                                                        tmp_path):
    """A finished --native capture gets its names section after the last frame: the reader
    goes across the frames and stops there (what follows a frame is not a frame)."""
    (tmp_path / "prog.py").write_text(PROGRAM)
    capture = tmp_path / "prog.mtrace"
    proc = run_memtrace("run", "--native", "-o", str(capture), "--force", "prog.py",
                        "600000", "0", cwd=tmp_path, env=env_for(mt, store_lib), timeout=300,
                        text=True)
    assert proc.returncode == 0, proc.stderr
    random_bytes = int(proc.stdout.split()[0])
    end = stream_end(str(capture))
    data = capture.read_bytes()
    assert end < len(data) and data[end : end + 7] == b"MTNAMES"
    assert any(f.stored for f in frames(data[:end]))
    stats = mt.stats(capture)
    assert stats["complete"] and stats["error"] is None and stats["names_embedded"] > 0
    loc = ts.stats_location(stats, "work", marker(PROGRAM, "random"))
    assert (loc["count"], loc["bytes"]) == (600000, random_bytes)


def test_what_follows_the_last_frame_is_not_stream(random_run, tmp_path):
    """Bytes after the last frame that do not begin a frame (a damaged names section, say)
    end the stream where old readers ended it: at the end of the (last) frame."""
    capture, _ = random_run
    stream = b"".join(capture_stream(capture))
    path = tmp_path / "tail.mtrace"
    path.write_bytes(capture.read_bytes() + b"MTNAMES\x01 not a frame")
    assert b"".join(capture_stream(path)) == stream
    reader = read_capture(path)
    assert reader.complete and reader.error is None
    assert snapshot(reader) == snapshot(read_capture(capture))
