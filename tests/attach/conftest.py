"""Fixtures for the attach tests: the gcc-built leak library and running target processes."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from attach_support import HERE, TARGET_PYTHON, Target, target_env


@pytest.fixture(scope="session")
def leaklib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/attach/leaklib.c compiled with gcc -g -O1 (the inlined helper stays inlined)."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is required by the attach tests", pytrace=False)
    out = tmp_path_factory.mktemp("attachlib") / "libleak.so"
    proc = subprocess.run(["gcc", "-g", "-O1", "-fPIC", "-shared", "-Wall",
                           str(HERE / "leaklib.c"), "-o", str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"gcc failed:\n{proc.stderr}", pytrace=False)
    return out


@pytest.fixture
def start_target(tmp_path: Path, leaklib: Path) -> Iterator:
    """start_target(*args, python=TARGET_PYTHON) -> Target running attach_target.py."""
    started: list[Target] = []

    def start(*args: str, python: str = TARGET_PYTHON, stdin: int = subprocess.DEVNULL,
              **env: str) -> Target:
        stop = tmp_path / f"stop-{len(started)}"
        target = Target([python, str(HERE / "attach_target.py"), *args],
                        target_env(LEAKLIB=str(leaklib), STOP_FILE=str(stop), **env),
                        cwd=tmp_path, stop_file=stop, stdin=stdin)
        started.append(target)
        return target

    yield start
    for target in started:
        target.kill()
