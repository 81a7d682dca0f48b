"""The layer contracts (setup.cfg's [importlinter]) hold, and they do catch a breach: the
engine importing the application, a lower engine layer importing a higher one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# the test extras install import-linter (install.sh); a checkout without it skips, CI never
pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists() and not os.environ.get("CI"),
                                reason="lint-imports is not installed (pip install -e .[test])")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "setup.cfg"),
                           "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_contracts_kept():
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 3 kept, 0 broken." in proc.stdout


@pytest.mark.parametrize(("module", "line", "contracts"), [
    ("memtrace_core/model/build.py", "import memtrace_tui.cli", ["memtrace_core (the engine)"]),
    ("memtrace_core/report/profile.py", "import rich.text", ["memtrace_core (the engine)"]),
    ("memtrace_core/reader/follow.py", "import memtrace_core.model.build", ["engine layers"]),
    ("memtrace_core/tracer/program.py", "import zstandard", ["the tracer"]),
    ("memtrace_core/tracer/program.py", "import memtrace_core.reader",
     ["engine layers", "the tracer"]),
])
def test_a_breach_is_caught(tmp_path, module, line, contracts):
    for package in ("memtrace_core", "memtrace_tui"):
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c", "*.h"))
    shutil.copy(REPO / "setup.cfg", tmp_path / "setup.cfg")
    path = tmp_path / module
    path.write_text(path.read_text() + f"\n{line}  # a breach\n")
    proc = _lint(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    broken = [row for row in proc.stdout.splitlines() if row.endswith(" BROKEN")]
    assert len(broken) == len(contracts), proc.stdout
    assert all(row.startswith(c) for row, c in zip(broken, contracts, strict=True)), proc.stdout
