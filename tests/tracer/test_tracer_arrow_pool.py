"""Apache Arrow's own memory pool: pyarrow (and pandas' Arrow-backed columns, its string
columns from pandas 3) allocates from mimalloc or jemalloc inside libarrow, which the tracer
sees only as the memory the pool maps. `--arrow-system-pool` makes Arrow allocate through
malloc, each buffer recorded exactly; without it, a run that used such a pool says so."""

from __future__ import annotations

import importlib.util
import re

import pytest

from memtrace_core.tracer.runner import parse_runner_options
from tests.tracer.tracer_support import live_at, stacks_at

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None,
                                reason="pyarrow is not installed (the bench extra)")

POSIX_MEMALIGN = 4  # docs/FORMAT.md's allocator codes: Arrow's system pool aligns to 64 B
MMAP = 9

# Four arrays of 10,000 one-kilobyte values, kept; the pool says what it holds for them.
PROGRAM = """\
import sys

import pyarrow as pa

keep = []
for _ in range(4):
    keep.append(pa.array([b"x" * 1000] * 10_000, type=pa.binary()))  # @arrays
pool = pa.default_memory_pool()
print(pool.backend_name, pool.bytes_allocated())
sys.exit(3)
"""


def _pool(stdout: bytes) -> tuple[str, int]:
    backend, in_use = stdout.decode().split()
    return backend, int(in_use)


def test_system_pool_records_every_arrow_buffer_exactly(tmp_path, mt):
    traced = mt.trace(tmp_path, PROGRAM, options=("--arrow-system-pool",))
    assert traced.proc.returncode == 3, traced.proc.stderr.decode()
    backend, in_use = _pool(traced.proc.stdout)
    assert backend == "system" and in_use > 4 * 10_000 * 1000
    # untraced, with its own pool, the program keeps the same bytes
    plain = mt.plain(str(traced.script), cwd=tmp_path)
    assert plain.returncode == 3 and _pool(plain.stdout)[1] == in_use
    live = live_at(traced.reader, "<module>", traced.lines["arrays"])
    arrow = [size for _address, size, allocator in live if allocator == POSIX_MEMALIGN]
    assert sum(arrow) == in_use, live  # every byte the pool holds, at the line that asked
    assert b"memtrace: note" not in traced.proc.stderr


def test_own_pool_is_named_at_exit(tmp_path, mt):
    traced = mt.trace(tmp_path, PROGRAM)
    assert traced.proc.returncode == 3, traced.proc.stderr.decode()
    backend, in_use = _pool(traced.proc.stdout)
    assert backend != "system"
    notes = [line for line in traced.proc.stderr.decode().splitlines()
             if line.startswith("memtrace: note:")]
    assert len(notes) == 1, traced.proc.stderr.decode()
    note = re.fullmatch(r"memtrace: note: pyarrow allocated from its own (\w+) pool "
                        r"\(([\d.]+) MiB in use at the end, [\d.]+ MiB at most\).*"
                        r"--arrow-system-pool records each of them", notes[0])
    assert note is not None, notes[0]
    assert note[1] == backend and note[2] == f"{in_use / 2**20:.1f}"
    # what the note is about: none of those buffers is in the capture, only the pool's
    # mapping: mimalloc reserves 1 GiB at once (MAP_NORESERVE, 1 GiB: reserved address space, kept
    # apart from the heap), jemalloc maps its chunks
    reader, line = traced.reader, traced.lines["arrays"]
    live = live_at(reader, "<module>", line)
    assert sum(size for _a, size, alloc in live if alloc != MMAP) < in_use // 100, live
    sids = set(stacks_at(reader, "<module>", line))
    reserved = sum(size for sid, size, _n in reader.reserved_stacks() if sid in sids)
    mapped = sum(size for _a, size, alloc in live if alloc == MMAP)
    assert reserved + mapped >= in_use, (reserved, live)
    if backend == "mimalloc":
        assert reserved >= 1 << 30 and reader.heap_bytes < 1 << 30, reserved


def test_no_note_without_pyarrow(tmp_path, mt):
    traced = mt.trace(tmp_path, "import json\nprint(json.dumps([1]))\n").check()
    assert traced.proc.stderr == b""


def test_no_note_when_the_pool_was_never_used(tmp_path, mt):
    """pandas imports pyarrow whether or not the program makes Arrow data: a pool that
    served nothing hid nothing."""
    source = ("import pyarrow as pa\n"
              "print(pa.default_memory_pool().backend_name, pa.total_allocated_bytes())\n")
    traced = mt.trace(tmp_path, source).check()
    backend, allocated = traced.proc.stdout.decode().split()
    assert backend != "system" and allocated == "0"
    assert traced.proc.stderr == b""


def test_live_runner_takes_the_option():
    options, program = parse_runner_options(["--fd", "5", "--arrow-system-pool", "app.py"])
    assert options.arrow_system_pool and options.fd == 5 and program.name == "app"
    options, _program = parse_runner_options(["--fd", "5", "app.py", "--arrow-system-pool"])
    assert not options.arrow_system_pool  # after the script: the program's own argument


def test_attach_refuses_the_option(tmp_path, mt):
    """An attached process's pool was chosen long before: the option is refused, not
    ignored."""
    proc = mt.cli("live", "--attach", "1", "--arrow-system-pool", cwd=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("memtrace: error: --arrow-system-pool chooses the pool"), err
