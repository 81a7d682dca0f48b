"""The code base stays ruff-clean and the core stays headless."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    result = subprocess.run(
        [ruff, "check", "--output-format", "concise", str(ROOT)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_tracer_import_loads_no_reader_ui_or_msgpack() -> None:
    """What runs inside someone else's process must stay small: only the tracer."""
    code = (
        "import sys, memtrace_core.tracer.runner, memtrace_core.tracer._tracer;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'msgpack', 'elftools')"
        " or m.startswith(('memtrace_core.reader', 'memtrace_core.symbols', 'memtrace_tui'))];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
