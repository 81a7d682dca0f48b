"""Fixtures of the reporter tests: the `mtreport` C extension built with gcc, real native
and Python-only captures of a program that leaks through it, and a runner for the CLI."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli import run_memtrace
from tests.report.report_support import PROGRAM, build_extension


@dataclass
class Reports:
    """Runs `python -m memtrace_tui ...` with the extension importable and a private
    symbol cache."""

    python: str
    env: dict[str, str]

    def with_path(self, directory: Path) -> Reports:
        env = dict(self.env)
        env["PYTHONPATH"] = os.pathsep.join([str(directory), env.get("PYTHONPATH", "")])
        return Reports(self.python, env)

    def cli(self, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
        return run_memtrace(*args, cwd=cwd, env=self.env, timeout=timeout)

    def ok(self, *args: str, cwd: Path) -> subprocess.CompletedProcess:
        proc = self.cli(*args, cwd=cwd)
        assert proc.returncode == 0, (
            f"memtrace {' '.join(args)} exited {proc.returncode}:\n{proc.stderr.decode()}")
        return proc

    def trace(self, directory: Path, *options: str) -> Path:
        """Run PROGRAM under `memtrace run OPTIONS` in directory; the capture path."""
        (directory / "prog.py").write_text(PROGRAM)
        capture = directory / "prog.mtrace"
        self.ok("run", *options, "-o", str(capture), "--force", "prog.py", cwd=directory)
        return capture


@dataclass
class Capture:
    path: Path
    native: bool
    ext: Path

    @property
    def reader(self):
        from memtrace_core.reader import read_capture

        return read_capture(self.path)


@pytest.fixture(scope="session")
def reports(mt, tmp_path_factory: pytest.TempPathFactory) -> Reports:
    env = dict(mt.env)
    env["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    env.pop("NO_COLOR", None)
    env.pop("FORCE_COLOR", None)
    return Reports(mt.python, env)


@pytest.fixture(scope="session")
def report_ext(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_extension(tmp_path_factory.mktemp("mtreport"))


@pytest.fixture(scope="session")
def native_capture(reports: Reports, report_ext: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Capture:
    directory = tmp_path_factory.mktemp("native")
    path = reports.with_path(report_ext.parent).trace(directory, "--native")
    return Capture(path, True, report_ext)


@pytest.fixture(scope="session")
def py_capture(reports: Reports, report_ext: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Capture:
    directory = tmp_path_factory.mktemp("python")
    path = reports.with_path(report_ext.parent).trace(directory)
    return Capture(path, False, report_ext)
