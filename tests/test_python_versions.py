"""memtrace runs on CPython 3.10 to 3.13; any other version gets one line and exit status 1
before anything version-specific loads."""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

import pytest

from memtrace_core.errors import UserError
from memtrace_tui.cli import check_python

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("version", [(3, 10, 0), (3, 11, 7), (3, 12, 1), (3, 13, 0)])
def test_supported_versions(version):
    check_python(version)


@pytest.mark.parametrize("version", [(3, 9, 18), (3, 14, 0), (4, 0, 0)])
def test_other_versions_are_refused_in_one_line(version):
    with pytest.raises(UserError) as raised:
        check_python(version)
    assert str(raised.value) == (
        f"Python {version[0]}.{version[1]} is not supported; memtrace needs CPython 3.10 "
        f"to 3.13")


OLD_PYTHONS = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.[89].*/bin/python3.[89]")))


@pytest.mark.skipif(not OLD_PYTHONS, reason="needs a Python 3.8 or 3.9 interpreter")
def test_an_older_interpreter_gets_the_one_line_error(tmp_path):
    """A real 3.8/3.9 running memtrace from this checkout: the error, not an import failure."""
    (tmp_path / "prog.py").write_text("print('ran')\n")
    for python in OLD_PYTHONS:
        proc = subprocess.run([python, "-m", "memtrace_tui", "run", "prog.py"], cwd=tmp_path,
                              env=dict(os.environ, PYTHONPATH=str(REPO)),
                              capture_output=True, text=True, timeout=60)
        version = proc.stderr.split("Python ", 1)[-1].split(" ", 1)[0]
        assert proc.returncode == 1 and proc.stdout == "", proc.stderr
        assert proc.stderr == (f"memtrace: error: Python {version} is not supported; "
                               f"memtrace needs CPython 3.10 to 3.13\n")
        assert python.endswith(version)
    assert not list(tmp_path.glob("*.mtrace"))
