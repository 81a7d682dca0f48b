"""A sampled capture file is written by the program's own threads, with no writer thread:
glibc's malloc/free skip their locks while a process has one thread, and a thread of
memtrace's own would slow every malloc/free of a single-threaded program (recorder.c,
g_inline). Records reach the file at least every tick period while sampled allocations
come, at stop, and survive the program being killed up to the last such flush."""

from __future__ import annotations

import json
import signal

from memtrace_core.reader import read_capture
from tests.cli import run_memtrace

THREADS = """\
import os
print(len(os.listdir("/proc/self/task")))
"""


def _run(tmp_path, source: str, *options: str):
    script = tmp_path / "prog.py"
    script.write_text(source)
    capture = tmp_path / "prog.mtrace"
    proc = run_memtrace("run", *options, "-o", str(capture), "--force", str(script),
                        cwd=tmp_path, text=True)
    return proc, capture


def test_sampled_capture_adds_no_thread(tmp_path):
    sampled, _ = _run(tmp_path, THREADS, "--sample", "512KiB")
    exact, _ = _run(tmp_path, THREADS)
    assert sampled.returncode == exact.returncode == 0, sampled.stderr + exact.stderr
    assert int(sampled.stdout) == 1  # the program's own thread, alone as under python
    assert int(exact.stdout) == 2  # exact mode's writer thread beside it


def test_sampled_capture_lasts_to_the_end_of_an_idle_program(tmp_path):
    """The last sampled allocation is followed by a long idle spell: no thread ticks
    meanwhile, yet the capture's duration covers it (a TICK written at stop) and holds
    every record (the buffer written at stop)."""
    proc, capture = _run(tmp_path, """\
import time
kept = [bytearray(64 << 20) for _ in range(3)]  # surely sampled: larger than the mean
time.sleep(0.6)
print("done")
""", "--sample", "512KiB")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(run_memtrace("stats", "--json", str(capture), text=True).stdout)
    assert stats["complete"] is True
    assert stats["duration_s"] >= 0.6
    assert stats["leaked_bytes"] >= 3 * (64 << 20)


def test_sigkilled_sampled_capture_holds_what_was_flushed(tmp_path):
    """Records are flushed at a sampled allocation once a tick period (250 ms) has passed:
    a program killed after that keeps them."""
    proc, capture = _run(tmp_path, """\
import os, signal, time
kept = [bytearray(64 << 20) for _ in range(3)]
time.sleep(0.4)
kept.append(bytearray(64 << 20))  # a sampled allocation 400 ms later: everything flushed
os.kill(os.getpid(), signal.SIGKILL)
""", "--sample", "512KiB")
    assert proc.returncode == -signal.SIGKILL
    reader = read_capture(capture)
    assert not reader.complete
    assert reader.heap_bytes >= 4 * (64 << 20)


def test_short_sampled_run_ends_with_a_tick(tmp_path):
    """A sampled run shorter than the tick period (250 ms) still ends with a TICK, the time
    of its end, after its last record and before the TRAILER."""
    import msgpack

    from memtrace_core.reader import capture_stream
    from tests.streamgen import TICK, TRAILER

    proc, capture = _run(tmp_path, "kept = bytearray(8 << 20)\n", "--sample", "512KiB")
    assert proc.returncode == 0, proc.stderr
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
    unpacker.feed(b"".join(capture_stream(capture))[8:])
    kinds = [rec[0] for rec in unpacker]
    assert kinds[-2:] == [TICK, TRAILER], kinds[-5:]
    assert read_capture(capture).complete
