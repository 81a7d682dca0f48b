"""Fixtures for the attach tests: the gcc-built leak library and running target processes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.attach.attach_support import HERE, TARGET_PYTHON, Target, build_shared, target_env


@pytest.fixture(scope="session")
def leaklib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/attach/leaklib.c compiled with gcc -g -O1 (the inlined helper stays inlined)."""
    return build_shared(HERE / "leaklib.c", tmp_path_factory.mktemp("attachlib") / "libleak.so",
                        "-g", "-O1")


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
