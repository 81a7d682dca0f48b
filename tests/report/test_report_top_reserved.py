"""`memtrace top` says the address space reserved (an allocator's arena, MMAP_RESERVE) next
to the heap, never in it: in its heap line and its JSON snapshot."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.streamgen import MALLOC, MMAP_RESERVE, MUNMAP, StreamWriter

GiB = 1 << 30
BASE = 0x7F00_0000_0000


def _top(path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memtrace_tui", "top", *options, str(path)],
                          capture_output=True, text=True, timeout=120)


def test_top_says_what_is_reserved_apart_from_the_heap(tmp_path):
    w = StreamWriter()
    pool = w.py_stack([("pool", "arrow.py", 7)])
    keep = w.py_stack([("keep", "app.py", 3)])
    w.alloc(1, MMAP_RESERVE, BASE, GiB, pool)
    w.alloc(1, MALLOC, 0x1000, 5000, keep)
    w.free(1, MUNMAP, BASE + GiB // 4, GiB // 4)  # a quarter of the arena handed back
    w.tick(1000)
    w.trailer()
    capture = tmp_path / "arena.mtrace"
    capture.write_bytes(w.data)
    snap = json.loads(_top(capture, "--json").stdout)
    assert (snap["heap_bytes"], snap["reserved_bytes"]) == (5000, 3 * GiB // 4)
    assert [(r["function"], r["bytes"]) for r in snap["rows"]] == [("keep", 5000)]
    text = _top(capture)
    assert text.returncode == 0, text.stderr
    first = text.stdout.splitlines()[0]
    assert "heap 4.9 KiB (5,000 B)" in first and first.endswith("reserved 768.0 MiB (not heap)")


def test_top_says_nothing_reserved_when_nothing_is(tmp_path):
    w = StreamWriter()
    w.alloc(1, MALLOC, 0x1000, 64, w.py_stack([("keep", "app.py", 3)]))
    w.trailer()
    capture = tmp_path / "plain.mtrace"
    capture.write_bytes(w.data)
    assert json.loads(_top(capture, "--json").stdout)["reserved_bytes"] == 0
    assert "(not heap)" not in _top(capture).stdout
