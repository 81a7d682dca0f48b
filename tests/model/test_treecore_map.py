"""The call-tree builder's hash map (memtrace_core/model/treecore.h) against a plain array:
tests/cfixtures/mtmapcheck.c, compiled with gcc, runs millions of random insertions,
overwrites, deletions and clears through many growths and checks every answer. Growing is
incremental (no insertion rehashes a whole table of a big tree under the UI's lock), so the
check also covers lookups, overwrites and deletions while entries sit in both tables."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def test_map_agrees_with_an_array_through_incremental_growth(tmp_path):
    if shutil.which("gcc") is None:
        pytest.fail("gcc is required by the ground-truth tests", pytrace=False)
    exe = tmp_path / "mtmapcheck"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", f"-I{ROOT / 'memtrace_core' / 'model'}",
                    str(ROOT / "tests" / "cfixtures" / "mtmapcheck.c"), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    proc = subprocess.run([str(exe), "2000000"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = re.fullmatch(r"(\d+) growths, (\d+) operations while growing: ok\n", proc.stdout)
    assert got, proc.stdout
    growths, during = int(got[1]), int(got[2])
    assert growths >= 6 and during > 10_000
