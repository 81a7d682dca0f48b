"""Compressed capture files ("MEMTRACZ" + zstd frame): same figures as the raw stream, and
cut or damaged files give a partial result or a one-line error, never a crash."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memtrace_core.errors import UserError
from memtrace_core.reader import read_capture
from tests.reader.reader_helpers import read_all, snapshot
from tests.streamgen import compress, sample_stream

RAW = sample_stream(seed=21, n=3000)
RAW_DATA = RAW.data
PACKED = compress(RAW_DATA, flush_every=2048)
ENDS = [8, *RAW.record_ends]


def test_compressed_file_reads_like_the_raw_stream(tmp_path: Path) -> None:
    path = tmp_path / "c.mtrace"
    path.write_bytes(PACKED)
    assert PACKED.startswith(b"MEMTRACZ") and PACKED[8:] != RAW_DATA[8:]
    r = read_capture(path)
    assert r.complete and not r.truncated and r.error is None
    assert snapshot(r) == snapshot(read_all(RAW_DATA))


def test_compressed_file_bigger_than_the_inflate_chunks(tmp_path: Path) -> None:
    """Many input slices and output chunks: incompressible-ish random sizes, 20 MB raw."""
    w = sample_stream(seed=3, n=200)
    body = w.data[8:]
    big = b"MEMTRACE" + body[: w.record_ends[-2] - 8]  # no trailer, repeat the records
    records = big[w.record_ends[0] :]
    data = big[: w.record_ends[0]]  # magic + header
    # repeating node definitions is an error, so repeat only ALLOC/FREE-free padding: TICKs
    tick = b"\x93\x08\xcf" + (1 << 40).to_bytes(8, "big") + b"\xce\x00\x00\x10\x00"
    data += records + tick * 1_500_000
    path = tmp_path / "big.mtrace"
    path.write_bytes(compress(data, flush_every=1 << 16))
    r = read_capture(path)
    assert r.error is None and not r.complete
    assert snapshot(r) == snapshot(read_all(data))


@pytest.mark.parametrize("seed", range(4))
def test_truncated_compressed_file_reads_a_prefix(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "t.mtrace"
    for cut in sorted(rng.sample(range(40, len(PACKED)), 25)):
        path.write_bytes(PACKED[:cut])
        inflated = zstandard.ZstdDecompressor().decompressobj().decompress(PACKED[8:cut])
        if len(inflated) < ENDS[1]:  # not even the whole HEADER
            with pytest.raises(UserError, match="truncated capture"):
                read_capture(path)
            continue
        r = read_capture(path)
        assert not r.complete and r.error is None
        # what was inflated is a prefix of the raw stream: the records read match that prefix
        end = ENDS[r.records]
        expect = read_all(RAW_DATA[:end])
        got = snapshot(r)
        assert got == snapshot(expect)


def test_corrupt_compressed_data_after_the_header_is_a_partial_result(tmp_path: Path) -> None:
    path = tmp_path / "bad.mtrace"
    at = len(PACKED) // 2
    path.write_bytes(PACKED[:at] + b"\xff" * 64 + PACKED[at + 64 :])
    r = read_capture(path)
    assert r.error and "corrupt" in r.error
    assert 0 < r.records < len(RAW.record_ends)
    assert not r.complete


def test_corrupt_compressed_data_before_the_header_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.mtrace"
    path.write_bytes(b"MEMTRACZ" + b"\xff" * 100)
    with pytest.raises(UserError, match="corrupt compressed data"):
        read_capture(path)
    path.write_bytes(b"MEMTRACZ" + zstandard.ZstdCompressor().compress(b"MEMTRACX" + bytes(50)))
    with pytest.raises(UserError, match="not a memtrace capture"):
        read_capture(path)
    path.write_bytes(b"MEMTRACZ")
    with pytest.raises(UserError, match="truncated capture"):
        read_capture(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(
    flips=st.lists(st.tuples(st.integers(8, len(PACKED) - 1), st.integers(0, 7)), min_size=1,
                   max_size=4),
    cut=st.integers(9, len(PACKED)),
)
def test_fuzz_compressed_files(tmp_path: Path, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(PACKED)
    for pos, bit in flips:
        data[pos] ^= 1 << bit
    path = tmp_path / "f.mtrace"
    path.write_bytes(bytes(data[:cut]))
    try:
        r = read_capture(path)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    snapshot(r)


@pytest.mark.parametrize("packed", [False, True], ids=["raw", "zstd"])
def test_read_capture_in_pieces_with_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              packed: bool) -> None:
    import memtrace_core.reader as reader_module

    monkeypatch.setattr(reader_module, "_RAW_CHUNK", 777)
    monkeypatch.setattr(reader_module, "_COMPRESSED_SLICE", 333)
    content = PACKED if packed else RAW_DATA
    path = tmp_path / "p.mtrace"
    path.write_bytes(content)
    seen: list[tuple[int, int]] = []
    r = read_capture(path, progress=lambda done, total: seen.append((done, total)))
    assert snapshot(r) == snapshot(read_all(RAW_DATA))
    assert len(seen) > 10 and seen[-1] == (len(content), len(content))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
