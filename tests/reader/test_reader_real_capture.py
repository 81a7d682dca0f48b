"""The reader against an independent decode (msgpack-python + the oracle) of real captures
written by `memtrace run`: whatever encoding the tracer picks, both must agree exactly."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
import zstandard

from memtrace_core.reader import read_capture
from tests.cli import run_memtrace
from tests.reader.reader_helpers import snapshot
from tests.reader.reader_oracle import Oracle
from tests.streamgen import events_items

SCRIPT = """
import ctypes, mmap, threading, time
keep = []
def work(n):
    for i in range(n):
        keep.append(bytearray(1000 + 37 * i))
        if i % 7 == 0:
            del keep[0]
def grow():
    s = b""
    for i in range(300):
        s += b"x" * 1000  # realloc chains
    return s
threads = [threading.Thread(target=work, args=(400,)) for _ in range(3)]
for t in threads:
    t.start()
work(500)
for t in threads:
    t.join()
m = mmap.mmap(-1, 1 << 20)
m.close()
big = grow()
time.sleep(0.05)
print("done")
"""


def replay(data: bytes) -> tuple[Oracle, dict, int, list, int]:
    """Decompress with zstandard, decode with msgpack-python and replay into the oracle; the
    MAPS snapshots rebuilt from MAPS and MAPS_DELTA records, and how many deltas there were."""
    if data[:8] == b"MEMTRACZ":
        data = zstandard.ZstdDecompressor().decompressobj().decompress(data[8:])
    assert data[:8] == b"MEMTRACE"
    o = Oracle()
    header: dict = {}
    count = 0
    last = 0
    previous = {4: [], 5: []}  # format 2: ALLOC_SAME/FREE_SAME repeat the previous ALLOC/FREE
    maps: list[list] = []
    deltas = 0
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(data))
    unpacker.feed(data[8:])
    records = []
    for rec in unpacker:  # format 9: an EVENTS bin is ALLOC_SAMEs and FREE_SAMEs
        if rec[0] == 16:
            records += [[10, delta, size] if size is not None else [11, delta]
                        for delta, size in events_items(rec[1])]
        else:
            records.append(rec)
    for rec in records:
        count += 1
        kind = rec[0]
        if kind == 10:
            rec = [4, *previous[4][1:3], rec[1], rec[2], *previous[4][5:]]
        elif kind == 11:
            rec = [5, *previous[5][1:3], rec[1], 0]
        if kind == 0:
            header = rec[1]
        elif rec[0] in (4, 5):  # addresses are deltas from the previous ALLOC/FREE
            previous[rec[0]] = rec
            last = (last + rec[3]) % (1 << 64)
            fields = [*rec[1:3], last, *rec[4:]]
            (o.alloc if rec[0] == 4 else o.free)(*fields)
        elif kind == 8:
            o.tick(rec[1])
        elif kind == 7:
            maps.append(rec[1])
        elif kind == 12:  # format 3: drop the objects at these load bases, add these
            deltas += 1
            gone = [m for m in maps[-1] if m[1] in rec[1]]
            assert len(gone) == len(set(rec[1]))
            maps.append([m for m in maps[-1] if m[1] not in rec[1]] + rec[2])
    return o, header, count, maps, deltas


def _canonical(snapshot: list) -> list:
    return sorted(snapshot, key=lambda m: (m[1], m[0]))


@pytest.mark.parametrize("native", [False, True], ids=["plain", "native"])
def test_real_capture_matches_independent_decode(tmp_path: Path, native: bool) -> None:
    (tmp_path / "prog.py").write_text(SCRIPT)
    capture = tmp_path / "prog.mtrace"
    options = ["--native"] if native else []
    proc = run_memtrace("run", *options, "-o", str(capture), "--force", "prog.py",
                        cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"done\n"
    r = read_capture(capture)
    o, header, count, maps, deltas = replay(capture.read_bytes())
    assert r.complete and not r.truncated and r.error is None
    assert r.records == count and r.header == header
    assert r.header["native"] is native
    # the modules imported while traced arrive as MAPS_DELTA; every snapshot is rebuilt
    assert deltas >= 1 and len(maps) == len(r.maps_history) == deltas + 1
    assert [_canonical(s) for s in r.maps_history] == [_canonical(s) for s in maps]
    assert any(m[0].endswith(".so") and "_ctypes" in m[0] for m in r.maps)
    assert (r.total_allocated_bytes, r.total_allocations) == (o.total_bytes, o.total_allocs)
    assert (r.heap_bytes, r.heap_allocations) == (o.heap_bytes, o.heap_allocs)
    assert (r.peak_bytes, r.peak_allocations, r.peak_time_us, r.peak_by_us) == (
        o.peak_bytes, o.peak_allocs, o.peak_time_us, o.peak_by_us
    )
    snap = snapshot(r)
    assert snap["stacks"] == o.stacks()
    assert snap["live"] == o.live_allocations()
    # every allocation of `work` is attributed to its line, on 4 distinct threads
    work_line = SCRIPT.splitlines().index("        keep.append(bytearray(1000 + 37 * i))") + 1
    threads = set()
    work_count = 0
    for sid in range(r.n_stacks):
        py, _nat, thread = r.stack_key(sid)
        frames = r.py_stack(py)
        if frames and r.codes[frames[0][0]][0] == "work" and frames[0][1] == work_line:
            threads.add(thread)
            work_count += r.stack_counters(sid)[1]
    assert len(threads) == 4
    assert work_count >= 3 * 400 + 500
