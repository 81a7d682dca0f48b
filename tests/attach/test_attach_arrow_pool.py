"""Attach to a program whose pyarrow allocates from its own pool (mimalloc inside libarrow):
the figures show only the pool's mappings, so `attach` says so, with the pool's own figures
(tracer/pools.py), and the program runs on unharmed. A target that never used Arrow's pool
gets no note."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tests.attach.attach_support import TARGET_PYTHON, Target, memtrace, target_env

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None,
                                reason="pyarrow is not installed (the bench extra)")

TARGET = """\
import os, sys, time

import pyarrow as pa

if sys.argv[1] == "use":
    keep = pa.array([b"x" * 1000] * 10_000, type=pa.binary())
pool = pa.default_memory_pool()
print("ready", pool.backend_name, pool.bytes_allocated(), flush=True)
while not os.path.exists("stop"):
    time.sleep(0.02)
print("done", pool.bytes_allocated(), flush=True)
"""


def _start(tmp_path: Path, use: str) -> Target:
    """The target under the plain interpreter, pyarrow importable (memtrace is not)."""
    spec = importlib.util.find_spec("pyarrow")
    assert spec is not None and spec.submodule_search_locations
    site = str(Path(spec.submodule_search_locations[0]).parent)
    (tmp_path / "target.py").write_text(TARGET)
    return Target([TARGET_PYTHON, "target.py", use], target_env(PYTHONPATH=site),
                  cwd=tmp_path, stop_file=tmp_path / "stop")


@pytest.mark.parametrize("use", ["use", "import-only"])
def test_attach_names_the_pool_it_cannot_see_into(tmp_path, use):
    target = _start(tmp_path, use)
    try:
        backend, in_use = target.wait_line("ready ").split()[1:]
        assert backend != "system"
        proc = memtrace("attach", str(target.pid), "-o", str(tmp_path / "a.mtrace"),
                        "--duration", "0.5")
        assert proc.returncode == 0, proc.stderr
        assert "detached from process" in proc.stderr
        notes = [line for line in proc.stderr.splitlines() if "memtrace: note:" in line]
        if use == "import-only":
            assert int(in_use) == 0 and notes == [], proc.stderr
        else:
            assert len(notes) == 1, proc.stderr
            note = re.fullmatch(r"memtrace: note: pyarrow allocates from its own (\w+) pool "
                                r"\(([\d.]+) MiB in use now, [\d.]+ MiB at most\).*"
                                r"can use --arrow-system-pool\)", notes[0])
            assert note is not None, notes[0]
            assert note[1] == backend and note[2] == f"{int(in_use) / 2**20:.1f}"
        assert target.finish() == 0  # unharmed: it ends as it would have
        target.read_all()
        assert target.lines[-1] == f"done {in_use}"
    finally:
        target.kill()
