"""capture_stream: a capture file's plain stream, exactly as a live pipe would carry it."""

from __future__ import annotations

from pathlib import Path

import pytest
import zstandard

from memtrace_core.errors import UserError
from memtrace_core.reader import capture_stream, read_capture
from tests.reader.reader_helpers import read_all, snapshot
from tests.streamgen import compress, sample_stream

RAW = sample_stream(seed=5, n=4000).data


@pytest.mark.parametrize("packed", [False, True], ids=["raw", "zstd"])
@pytest.mark.parametrize("chunk", [1 << 10, 1 << 23])
def test_pieces_join_to_the_plain_stream(tmp_path: Path, packed: bool, chunk: int) -> None:
    path = tmp_path / "s.mtrace"
    path.write_bytes(compress(RAW, flush_every=1500) if packed else RAW)
    pieces = list(capture_stream(path, chunk=chunk))
    assert b"".join(pieces) == RAW
    assert all(pieces)
    if chunk < len(RAW) // 4:
        assert len(pieces) > 1


def test_a_real_capture_streams_into_the_reader_as_read_capture_reads_it(
    mt, tmp_path: Path
) -> None:
    """`memtrace run` writes the file (the tracer's own zstd writer); feeding its plain
    stream piece by piece gives every aggregate read_capture gives."""
    source = "keep = [bytearray(1000 + i) for i in range(3000)]\nkeep += [bytes(1 << 20)]\n"
    run = mt.trace(tmp_path, source, options=("--native",)).check()
    assert run.capture.read_bytes().startswith(b"MEMTRACZ")
    plain = b"".join(capture_stream(run.capture, chunk=4096))
    assert plain.startswith(b"MEMTRACE")
    fed = read_all(plain, chunks=[4096] * (len(plain) // 4096))
    assert fed.complete and fed.error is None
    assert snapshot(fed) == snapshot(read_capture(run.capture))


def test_a_cut_compressed_file_streams_up_to_its_last_flush(tmp_path: Path) -> None:
    packed = compress(RAW, flush_every=1500)
    path = tmp_path / "cut.mtrace"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    plain = b"".join(capture_stream(path))
    inflate = zstandard.ZstdDecompressor().decompressobj()
    expected = inflate.decompress(packed[8 : len(packed) * 2 // 3])
    assert plain == expected and RAW.startswith(plain) and len(plain) > len(RAW) // 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "empty file"),
        (b"#!/bin/sh\necho not a capture\n", "not a memtrace capture"),
        (b"MEMTRACZ" + b"\xff" * 64, "corrupt compressed data"),
    ],
)
def test_bad_files_are_one_line_errors(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "bad.mtrace"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message) as info:
        list(capture_stream(path))
    assert "\n" not in str(info.value)
