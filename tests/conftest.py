"""Shared fixtures: gcc-built ground-truth C code and helpers that run real traced processes.

Everything here runs real subprocesses: `python -m memtrace_tui run ...` on a script written
to a temporary directory, then `python -m memtrace_tui stats --json` (or the reader API) on
the capture it wrote.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from tests.cli import memtrace_env, run_memtrace

CFIXTURES = Path(__file__).resolve().parent / "cfixtures"
PYTHON = sys.executable
CFLAGS = ["-g", "-O1", "-fPIC", "-shared", "-Wall"]


@dataclass(frozen=True)
class CBuild:
    """Paths of the ground-truth C code, compiled once per test session."""

    ext_dir: Path  # holds the `mtext` extension module (put on PYTHONPATH)
    ext: Path  # the mtext extension .so
    mtlib: Path  # plain library for ctypes
    mtdl2: Path  # plain library dlopen-ed from mtlib
    mtdeep: Path  # deep native recursion ending in malloc
    mtalloctab: Path  # allocator kept in tables of function pointers (data relocations)
    mtrpath: dict[str, Path]  # "runpath"/"rpath": dlopens a soname through $ORIGIN
    mtnext: tuple[Path, Path]  # mt_probe in A, then in B (A's dependency): RTLD_NEXT
    mtctor: Path  # allocates in its constructor, inside dlopen
    mtproc: Path  # C threads named three ways, an atexit handler that allocates
    mtchunkmaps: Path  # preloaded: counts 16 KiB anonymous mappings (CPython's frame chunks)


def _gcc(args: list[str]) -> None:
    """Compile or fail the session with gcc's own message."""
    proc = subprocess.run(["gcc", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"gcc {' '.join(args)} failed:\n{proc.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def cbuild(tmp_path_factory: pytest.TempPathFactory) -> CBuild:
    """Compile tests/cfixtures/*.c with gcc -g -O1 into a session temporary directory."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is required by the ground-truth tests", pytrace=False)
    out = tmp_path_factory.mktemp("cbuild")
    ext = out / f"mtext{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_paths()["include"]
    _gcc([*CFLAGS, "-pthread", f"-I{include}", str(CFIXTURES / "mtext.c"), "-o", str(ext)])
    mtlib = out / "libmtlib.so"
    _gcc([*CFLAGS, str(CFIXTURES / "mtlib.c"), "-o", str(mtlib), "-ldl"])
    mtdl2 = out / "libmtdl2.so"
    _gcc([*CFLAGS, str(CFIXTURES / "mtdl2.c"), "-o", str(mtdl2)])
    mtdeep = out / "libmtdeep.so"
    _gcc([*CFLAGS, str(CFIXTURES / "mtdeep.c"), "-o", str(mtdeep)])
    mtalloctab = out / "libmtalloctab.so"
    _gcc([*CFLAGS, str(CFIXTURES / "mtalloctab.c"), "-o", str(mtalloctab)])
    mtrpath = {}
    for kind, tags in (("runpath", "--enable-new-dtags"), ("rpath", "--disable-new-dtags")):
        # only the library's own $ORIGIN search path finds its dependency
        (out / kind / "sharedlibs").mkdir(parents=True)
        _gcc([*CFLAGS, str(CFIXTURES / "mtrpathdep.c"), "-Wl,-soname,libmtrpathdep.so",
              "-o", str(out / kind / "sharedlibs" / "libmtrpathdep.so")])
        mtrpath[kind] = out / kind / "libmtrpath.so"
        _gcc([*CFLAGS, str(CFIXTURES / "mtrpath.c"), f"-Wl,{tags}",
              "-Wl,-rpath,$ORIGIN/sharedlibs", "-o", str(mtrpath[kind]), "-ldl"])
    mtnext = (out / "libmtnexta.so", out / "libmtnextb.so")
    _gcc([*CFLAGS, "-DPROBE=2", str(CFIXTURES / "mtnext.c"), "-Wl,-soname,libmtnextb.so",
          "-o", str(mtnext[1])])
    _gcc([*CFLAGS, "-DPROBE=1", str(CFIXTURES / "mtnext.c"), "-o", str(mtnext[0]),
          f"-L{out}", "-Wl,--no-as-needed", "-lmtnextb", "-Wl,-rpath,$ORIGIN", "-ldl"])
    mtctor = out / "libmtctor.so"
    _gcc([*CFLAGS, str(CFIXTURES / "mtctor.c"), "-o", str(mtctor)])
    mtproc = out / "libmtproc.so"
    _gcc([*CFLAGS, "-pthread", str(CFIXTURES / "mtproc.c"), "-o", str(mtproc)])
    mtchunkmaps = out / "libmtchunkmaps.so"
    _gcc([*CFLAGS, str(CFIXTURES / "mtchunkmaps.c"), "-o", str(mtchunkmaps), "-ldl"])
    return CBuild(ext_dir=out, ext=ext, mtlib=mtlib, mtdl2=mtdl2, mtdeep=mtdeep,
                  mtalloctab=mtalloctab, mtrpath=mtrpath, mtnext=mtnext, mtctor=mtctor,
                  mtproc=mtproc, mtchunkmaps=mtchunkmaps)


def child_env(cbuild: CBuild | None = None, **extra: str) -> dict[str, str]:
    """Environment for traced and untraced children: the repo and the C fixtures importable."""
    env = memtrace_env(*([cbuild.ext_dir] if cbuild is not None else []))
    if cbuild is not None:
        env["MT_LIB"] = str(cbuild.mtlib)
        env["MT_DL2"] = str(cbuild.mtdl2)
        env["MT_DEEP"] = str(cbuild.mtdeep)
        env["MT_ALLOCTAB"] = str(cbuild.mtalloctab)
        env["MT_RPATH_RUNPATH"] = str(cbuild.mtrpath["runpath"])
        env["MT_RPATH_RPATH"] = str(cbuild.mtrpath["rpath"])
        env["MT_NEXT_A"], env["MT_NEXT_B"] = (str(p) for p in cbuild.mtnext)
        env["MT_CTOR"] = str(cbuild.mtctor)
        env["MT_PROC"] = str(cbuild.mtproc)
    env.update(extra)
    return env


def memtrace(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m memtrace_tui ARGS` and return the finished process (bytes output)."""
    return run_memtrace(*args, cwd=cwd, env=env or child_env(), input=input, timeout=timeout)


def load_stats(capture: Path, cwd: Path | None = None) -> dict[str, Any]:
    """`memtrace stats --json CAPTURE` as a dict; fails the test on any error."""
    proc = memtrace("stats", "--json", str(capture), cwd=cwd or capture.parent)
    assert proc.returncode == 0, f"stats failed ({proc.returncode}): {proc.stderr.decode()}"
    return json.loads(proc.stdout)


def marker_lines(source: str) -> dict[str, int]:
    """Line numbers of `# @name` markers in a script's source."""
    lines = {}
    for number, text in enumerate(source.splitlines(), start=1):
        if "# @" in text:
            lines[text.rsplit("# @", 1)[1].strip()] = number
    return lines


@dataclass
class Traced:
    """One traced run: the finished process, its capture and the script's markers."""

    proc: subprocess.CompletedProcess[bytes]
    capture: Path
    script: Path
    lines: dict[str, int] = field(default_factory=dict)

    def check(self) -> Traced:
        """Fail with the program's stderr unless it exited 0 and wrote a capture."""
        assert self.proc.returncode == 0, (
            f"traced program exited {self.proc.returncode}:\n{self.proc.stderr.decode()}"
        )
        assert self.capture.exists(), f"no capture written:\n{self.proc.stderr.decode()}"
        return self

    @cached_property
    def stats(self) -> dict[str, Any]:
        return load_stats(self.capture)

    @cached_property
    def reader(self) -> Any:
        from memtrace_core.reader import read_capture

        return read_capture(self.capture)


class Memtrace:
    """Runs memtrace and plain Python on scripts, with the C fixtures importable.

    Tests get it through the `mt` fixture (test modules never import conftest)."""

    python = PYTHON

    def __init__(self, cbuild: CBuild) -> None:
        self.cbuild = cbuild
        self.env = child_env(cbuild)
        self.marker_lines = marker_lines

    def cli(
        self, *args: str, cwd: Path, input: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        """`python -m memtrace_tui ARGS` in CWD."""
        return memtrace(*args, cwd=cwd, env=self.env, input=input, timeout=timeout)

    def plain(
        self, *args: str, cwd: Path, input: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        """`python ARGS` untraced, in the same environment as the traced runs."""
        return subprocess.run(
            [PYTHON, *args],
            cwd=cwd,
            env=self.env,
            input=input,
            capture_output=True,
            timeout=timeout,
        )

    def stats(self, capture: Path) -> dict[str, Any]:
        return load_stats(capture)

    def trace(
        self,
        directory: Path,
        source: str,
        *args: str,
        options: tuple[str, ...] = (),
        input: bytes | None = None,
        timeout: float = 120,
        name: str = "prog.py",
    ) -> Traced:
        """Write SOURCE to DIRECTORY/NAME; run `memtrace run OPTIONS -o NAME.mtrace NAME ARGS`."""
        script = directory / name
        script.write_text(source)
        capture = directory / (Path(name).stem + ".mtrace")
        proc = self.cli(
            "run",
            *options,
            "-o",
            str(capture),
            "--force",
            name,
            *args,
            cwd=directory,
            input=input,
            timeout=timeout,
        )
        return Traced(proc=proc, capture=capture, script=script, lines=marker_lines(source))


@pytest.fixture(scope="session")
def mt(cbuild: CBuild) -> Memtrace:
    """The helper that runs traced and untraced real processes."""
    return Memtrace(cbuild)
