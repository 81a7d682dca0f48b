"""Bad input gives one line and exit status 1; a library rebuilt after the capture is
reported stale instead of lending its new names to old addresses."""

from __future__ import annotations

import json
import os

import pytest

from tests.report.report_support import LEAK_BLOCKS, build_extension

COMMANDS = {
    "table": ("table",),
    "tree": ("tree",),
    "flamegraph": ("flamegraph", "-o", "out.html"),
    "folded": ("export", "--format", "folded"),
    "speedscope": ("export", "--format", "speedscope", "-o", "out.json"),
    "pprof": ("export", "--format", "pprof", "-o", "out.pb.gz"),
}


def one_line_error(proc) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == 1, (proc.returncode, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memtrace: error: "), err
    return lines[0]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_missing_and_foreign_files(reports, tmp_path, command):
    args = COMMANDS[command]
    assert "no such file" in one_line_error(
        reports.cli(*args, str(tmp_path / "missing.mtrace"), cwd=tmp_path))
    (tmp_path / "random.mtrace").write_bytes(os.urandom(4096))
    one_line_error(reports.cli(*args, str(tmp_path / "random.mtrace"), cwd=tmp_path))
    (tmp_path / "empty.mtrace").write_bytes(b"")
    one_line_error(reports.cli(*args, str(tmp_path / "empty.mtrace"), cwd=tmp_path))
    (tmp_path / "garbage.mtrace").write_bytes(b"MEMTRACE" + bytes(range(200, 256)) * 20)
    one_line_error(reports.cli(*args, str(tmp_path / "garbage.mtrace"), cwd=tmp_path))
    assert not any(tmp_path.glob("out.*"))


def raw_stream(path) -> bytes:
    """The plain stream inside a capture file (zstd-compressed by `memtrace run`): damage
    and cuts are placed in the records themselves."""
    import zstandard

    data = path.read_bytes()
    if data[:8] == b"MEMTRACZ":
        data = zstandard.ZstdDecompressor().decompressobj().decompress(data[8:])
    assert data[:8] == b"MEMTRACE"
    return data


def record_boundary_near(data: bytes, offset: int) -> int:
    """The end of the msgpack record nearest OFFSET in a plain stream: damage placed there
    starts a record (cut anywhere, a long string could swallow it)."""
    import msgpack

    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False, max_buffer_size=len(data))
    unpacker.feed(data[8:])
    ends = []
    for _record in unpacker:
        ends.append(8 + unpacker.tell())
    return min(ends, key=lambda end: abs(end - offset))


def test_corrupt_tail_reports_what_was_read_and_fails(reports, native_capture, tmp_path):
    data = raw_stream(native_capture.path)
    damaged = tmp_path / "damaged.mtrace"
    cut = record_boundary_near(data, len(data) * 2 // 3)
    damaged.write_bytes(data[:cut] + b"\xc1" * 64)  # 0xc1: never valid
    proc = reports.cli("table", "--json", str(damaged), cwd=tmp_path)
    line = one_line_error(proc)
    assert "corrupt" in line
    doc = json.loads(proc.stdout)  # the records before the damage are still reported
    assert doc["total_allocations"] >= 0


def test_bad_options_and_unwritable_output(reports, native_capture, tmp_path):
    capture = str(native_capture.path)
    assert "--threshold" in one_line_error(
        reports.cli("tree", "--threshold", "lots", capture, cwd=tmp_path))
    assert "--threshold" in one_line_error(
        reports.cli("tree", "--threshold", "150%", capture, cwd=tmp_path))
    assert "cannot write" in one_line_error(
        reports.cli("flamegraph", capture, "-o", str(tmp_path / "no" / "such" / "dir.html"),
                    cwd=tmp_path))
    proc = reports.cli("table", "--leaks", "--peak", capture, cwd=tmp_path)
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr  # argparse usage


def test_rebuilt_library_is_reported_stale(reports, tmp_path):
    from memtrace_core.symbols.elf import read_build_id

    ext = build_extension(tmp_path / "ext")
    # without stored names (a capture that carries them does not need the library at all)
    capture = reports.with_path(ext.parent).trace(tmp_path, "--native", "--no-names")
    before = read_build_id(str(ext))
    build_extension(tmp_path / "ext", "-DREP_REBUILT")  # same path, other code
    assert read_build_id(str(ext)) != before

    proc = reports.ok("table", "--json", "-n", "0", "--leaks", str(capture), cwd=tmp_path)
    doc = json.loads(proc.stdout)
    assert doc["stale_libraries"] == [str(ext)]
    err = proc.stderr.decode()
    assert str(ext) in err and "machine that ran the program" in err
    names = {r["function"] for r in doc["rows"]}
    assert f"<library changed: {ext}>" in names
    assert not names & {"rep_entry", "rep_outer", "rep_middle", "rep_inline_alloc",
                        "rep_padding"}
    changed = next(r for r in doc["rows"] if r["function"] == f"<library changed: {ext}>")
    # exactly the extension's leaks (the program's own objects may leak too: on 3.10 its
    # function objects come from malloc)
    assert changed["kind"] == "nosymbol" and changed["own_bytes"] == sum(LEAK_BLOCKS)

    folded = reports.ok("export", "--format", "folded", "--leaks", str(capture),
                        cwd=tmp_path).stdout.decode()
    assert f"<library changed: {ext}>" in folded and "rep_" not in folded
    page = tmp_path / "flame.html"
    reports.ok("flamegraph", str(capture), "-o", str(page), cwd=tmp_path)
    assert "machine that ran the program" in page.read_text()


def test_truncated_capture_is_reported_as_incomplete(reports, native_capture, tmp_path):
    from memtrace_core.reader import read_capture

    data = raw_stream(native_capture.path)
    cut = tmp_path / "cut.mtrace"
    for size in range(len(data) - 1, len(data) // 2, -7):  # a cut inside a record
        cut.write_bytes(data[:size])
        reader = read_capture(cut)
        if reader.truncated and not reader.error:
            break
    else:
        pytest.fail("no cut inside a record found")
    proc = reports.ok("table", "--json", "-n", "0", str(cut), cwd=tmp_path)
    assert "incomplete" in proc.stderr.decode()
    doc = json.loads(proc.stdout)
    assert (doc["total_bytes"], doc["total_allocations"]) == (reader.total_allocated_bytes,
                                                              reader.total_allocations)
