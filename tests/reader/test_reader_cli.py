"""`memtrace stats` on generated capture files: exact figures, and every kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import run_memtrace
from tests.streamgen import FREE_FN, MALLOC, MMAP, MUNMAP, REALLOC, START_TIME, StreamWriter

REPO = Path(__file__).resolve().parents[2]
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
LIBC_BASE = 0x7F00_0000_0000
LIBX = "/opt/libx.so"
LIBX_BASE = 0x7E00_0000_0000


def stats(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_memtrace("stats", *args, cwd=cwd, timeout=60, text=True)


def known_capture(trailer: bool = True) -> StreamWriter:
    """A native capture whose every figure is worked out by hand below."""
    w = StreamWriter(native=True, pid=31337, argv=["app.py", "--n", "3"])
    w.thread(1, 31337, "MainThread")
    w.maps([
        [LIBC, LIBC_BASE, "c0ffee", [[0, 0x1000, 4, 0], [0x1000, 0x9000, 5, 0x1000]]],
        [LIBX, LIBX_BASE, None, [[0, 0x4000, 5, 0]]],
    ])
    load = w.py_stack([("main", "app.py", 10), ("load", "app.py", 20)])
    parse = w.py_stack([("main", "app.py", 11), ("parse", "lib/parse.py", 7)])
    in_libc = w.native_stack([LIBX_BASE + 0x100, LIBC_BASE + 0x1234])
    in_libx = w.native_stack([LIBX_BASE + 0x100, LIBX_BASE + 0x200])
    for i in range(10):  # load: 10 x 1000 B, 4 freed
        w.alloc(1, MALLOC, 0x10000 + 0x1000 * i, 1000, load, in_libc)
    w.tick(250_000, 1 << 20)
    for i in range(4):
        w.free(1, FREE_FN, 0x10000 + 0x1000 * i)
    for i in range(100):  # parse: 100 x 16 B, all freed later
        w.alloc(1, MALLOC, 0x80000 + 0x20 * i, 16, parse, in_libx)
    w.tick(500_000, 1 << 21)
    w.alloc(1, MMAP, 0x7D00_0000_0000, 65536, load, 0)  # peak: 6000+1600+65536 at 0.5 s
    w.tick(750_000, 1 << 22)
    w.free(1, MUNMAP, 0x7D00_0000_0000, 32768)  # half unmapped: 32768 left
    for i in range(100):
        w.free(1, FREE_FN, 0x80000 + 0x20 * i)
    w.alloc(1, MALLOC, 0x90000, 5, 0, 0)  # no Python frame
    w.free(1, REALLOC, 0x90000)
    w.alloc(1, REALLOC, 0x90010, 7, 0, 0)
    if trailer:
        w.trailer(end_time=START_TIME + 1.5, exit_code=0)
    return w


def test_stats_json_exact_figures(tmp_path: Path) -> None:
    capture = known_capture().write(tmp_path / "known.mtrace")
    proc = stats("--json", str(capture), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["pid"] == 31337 and s["command"] == "app.py --n 3"
    assert s["native"] is True and s["complete"] is True and s["truncated"] is False
    assert s["duration_s"] == 1.5 and s["exit_code"] == 0
    assert s["total_allocated_bytes"] == 10_000 + 1_600 + 65_536 + 5 + 7
    assert s["total_allocations"] == 10 + 100 + 1 + 2
    assert (s["peak_bytes"], s["peak_allocations"], s["peak_time_s"]) == (
        6_000 + 1_600 + 65_536, 6 + 100 + 1, 0.5
    )
    assert (s["leaked_bytes"], s["leaked_allocations"]) == (6_000 + 32_768 + 7, 6 + 1 + 1)
    assert s["allocators"] == {
        "malloc": {"count": 111, "bytes": 11_605},
        "realloc": {"count": 1, "bytes": 7},
        "mmap": {"count": 1, "bytes": 65_536},
    }
    assert s["size_histogram"] == [
        {"min_bytes": 4, "max_bytes": 7, "count": 2},
        {"min_bytes": 16, "max_bytes": 31, "count": 100},
        {"min_bytes": 512, "max_bytes": 1023, "count": 10},
        {"min_bytes": 65536, "max_bytes": 131071, "count": 1},
    ]
    load = {"function": "load", "file": "app.py", "line": 20}
    parse = {"function": "parse", "file": "lib/parse.py", "line": 7}
    native = {"function": "<native>", "file": "", "line": 0}
    assert s["top_locations"] == [
        {**load, "bytes": 75_536, "count": 11, "leaked_bytes": 38_768, "leaked_count": 7},
        {**parse, "bytes": 1_600, "count": 100, "leaked_bytes": 0, "leaked_count": 0},
        {**native, "bytes": 12, "count": 2, "leaked_bytes": 7, "leaked_count": 1},
    ]
    assert [e["function"] for e in s["top_locations_by_count"]] == ["parse", "load", "<native>"]
    fields = ("module", "offset", "build_id", "bytes", "count", "leaked_bytes", "leaked_count")
    assert [{k: e[k] for k in fields} for e in s["top_native_locations"]] == [
        {"module": LIBC, "offset": 0x1234, "build_id": "c0ffee", "bytes": 10_000, "count": 10,
         "leaked_bytes": 6_000, "leaked_count": 6},
        {"module": LIBX, "offset": 0x200, "build_id": None, "bytes": 1_600, "count": 100,
         "leaked_bytes": 0, "leaked_count": 0},
    ]


def test_stats_human_output(tmp_path: Path) -> None:
    capture = known_capture().write(tmp_path / "known.mtrace")
    proc = stats(str(capture), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "\x1b[" not in out  # no colour when not a terminal
    for text in ("pid 31337", "complete", "73136 B", "at 0.500 s",
                 "38775 B", "load", "app.py:20", "lib/parse.py:7", "libc.so.6", "0x1234",
                 "Allocators", "mmap"):
        assert text in out, text
    assert "incomplete" not in out


def test_stats_on_an_incomplete_capture(tmp_path: Path) -> None:
    w = known_capture(trailer=False)
    data = w.data
    cut = w.record_ends[-1] - 2  # inside the last record
    capture = tmp_path / "killed.mtrace"
    capture.write_bytes(data[:cut])
    proc = stats("--json", str(capture), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["complete"] is False and s["truncated"] is True
    # the last record (ALLOC 7 B by realloc) is lost, its FREE half was read
    assert (s["leaked_bytes"], s["leaked_allocations"]) == (6_000 + 32_768, 7)
    assert s["duration_s"] == 0.75
    proc = stats(str(capture), cwd=tmp_path)
    assert proc.returncode == 0 and "incomplete capture" in proc.stdout


def _one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("memtrace: error: ")
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, ("no such file",)),
        (b"", ("empty file",)),
        (b"\x7fELF\x02\x01\x01" + bytes(100), ("not a memtrace capture",)),
        (b"MEMTRACE\x92\x04\x80", ("corrupt capture at byte 8", "first record is not HEADER")),
        (b"MEMTR", ("not a memtrace capture",)),
        (b"MEMTRACE\x92\x00", ("truncated capture",)),
    ],
)
def test_stats_bad_input_is_one_line_error(tmp_path: Path, content: bytes | None,
                                           words: tuple[str, ...]) -> None:
    capture = tmp_path / "bad.mtrace"
    if content is not None:
        capture.write_bytes(content)
    proc = stats("--json", str(capture), cwd=tmp_path)
    _one_line_error(proc, str(capture), *words)
    assert proc.stdout == ""


def test_stats_on_a_directory(tmp_path: Path) -> None:
    _one_line_error(stats(str(tmp_path), cwd=tmp_path), "directory")


def test_stats_corrupt_after_header_shows_partial_figures_and_fails(tmp_path: Path) -> None:
    w = known_capture()
    at = w.record_ends[30]
    capture = tmp_path / "corrupt.mtrace"
    capture.write_bytes(w.data[:at] + b"\xc1garbage" + w.data[at:])
    proc = stats("--json", str(capture), cwd=tmp_path)
    _one_line_error(proc, f"corrupt capture at byte {at}")
    s = json.loads(proc.stdout)
    assert s["complete"] is False and s["error"].startswith(f"corrupt capture at byte {at}")
    assert s["records"] == 31


def test_stats_does_not_import_textual(tmp_path: Path) -> None:
    capture = known_capture().write(tmp_path / "known.mtrace")
    code = (
        "import sys; from memtrace_tui.cli import main; "
        f"rc = main(['stats', {str(capture)!r}]); "
        "assert rc == 0; assert not [m for m in sys.modules if m.startswith('textual')], 'textual'"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_stats_on_compressed_captures(tmp_path: Path) -> None:
    from tests.streamgen import compress

    w = known_capture()
    packed = compress(w.data, flush_every=64)
    whole = tmp_path / "whole.mtrace"
    whole.write_bytes(packed)
    proc = stats("--json", str(whole), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["leaked_bytes"] == 6_000 + 32_768 + 7
    killed = tmp_path / "killed.mtrace"
    killed.write_bytes(packed[: len(packed) * 2 // 3])
    proc = stats(str(killed), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "incomplete capture" in proc.stdout
    corrupt = tmp_path / "corrupt.mtrace"
    half = len(packed) // 2
    corrupt.write_bytes(packed[:half] + b"\xff" * 32 + packed[half + 32 :])
    _one_line_error(stats("--json", str(corrupt), cwd=tmp_path), "corrupt")
