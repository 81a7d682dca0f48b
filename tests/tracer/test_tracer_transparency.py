"""A traced program sees and shows exactly what it would untraced: same argv, __main__,
sys.path[0], stdin, stdout and stderr bytes, traceback text, exit status, the depth at
which it meets RecursionError, and where its calls cross the interpreter's frame chunks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import run_memtrace
from tests.tracer.tracer_support import totals_at

SHOW = """\
import os
import pickle
import sys
import warnings


class Point:
    def __init__(self, x):
        self.x = x


def main():
    print("argv", sys.argv)
    print("name", __name__)
    print("file", __file__)
    print("path0", sys.path[0])
    print("main is me", sys.modules["__main__"].__dict__ is globals())
    print("spec", None if __spec__ is None else __spec__.name)
    print("pickle", pickle.loads(pickle.dumps(Point(4))).x)
    print("cwd", os.getcwd())
    data = sys.stdin.buffer.read()
    sys.stdout.buffer.write(b"stdin " + data[::-1] + b"\\n")
    sys.stderr.write("to stderr\\n")
    warnings.warn("a warning")
    print("unflushed tail without newline", end="")


if __name__ == "__main__":
    main()
"""

EXIT3 = """\
import sys
print("before exit")
sys.exit(3)
"""

EXIT_MESSAGE = """\
import sys
sys.exit("fatal: a message")
"""

RAISES = """\
def inner(n):
    return {}[n]


def outer():
    try:
        inner("key")
    except KeyError as exc:
        raise ValueError("wrapped") from exc


print("about to raise")
outer()
"""

# memtrace's own frames lie below the program's: it must still recurse exactly as deep
RECURSION = """\
import sys


def depth(k=0):
    try:
        return depth(k + 1)
    except RecursionError:
        return k


print("limit", sys.getrecursionlimit(), "depth", depth())
sys.setrecursionlimit(3000)
print("limit", sys.getrecursionlimit(), "depth", depth())
"""

# and as deep in C calls (test_program_recurses_as_deep_in_c_calls): from 3.12 these count
# against a limit of their own
C_RECURSION = """\
import json


def fits(depth):
    x = []
    for _ in range(depth):
        x = [x]
    try:
        json.dumps(x)
        repr(x)
        return True
    except RecursionError:
        return False


lo, hi = 1, 200000
while lo < hi:
    mid = (lo + hi + 1) // 2
    if fits(mid):
        lo = mid
    else:
        hi = mid - 1
print("deepest nested list", lo)
"""

# memtrace compiles the program itself, before tracing starts (runner.py): its source
# encoding, future imports and syntax errors read as python's
COOKIE = (b"# -*- coding: latin-1 -*-\nfrom __future__ import annotations\n"
          b"x: undefined_name = 1\nprint('\xe9t\xe9', __annotations__, len('\xe9'))\n")
SYNTAX = "print('first')\nx = (1,\n"
CODE = "import sys; print('\u00e9t\u00e9', sys.argv); print(len('\u00e9'))"

CASES = {
    # name: (files, untraced args, traced args after `run -o CAPTURE`, stdin)
    "script": ({"show.py": SHOW}, ["show.py", "a", "-b", "--c=d"], ["show.py", "a", "-b", "--c=d"]),
    "module": ({"showmod.py": SHOW}, ["-m", "showmod", "x", "y"], ["-m", "showmod", "x", "y"]),
    "package": (
        {"pkg/__init__.py": "", "pkg/__main__.py": SHOW},
        ["-m", "pkg", "p"],
        ["-m", "pkg", "p"],
    ),
    "subdir": ({"sub/show.py": SHOW}, ["sub/show.py", "s"], ["sub/show.py", "s"]),
    "exit3": ({"exit3.py": EXIT3}, ["exit3.py"], ["exit3.py"]),
    "exit_message": ({"msg.py": EXIT_MESSAGE}, ["msg.py"], ["msg.py"]),
    "raises": ({"raises.py": RAISES}, ["raises.py"], ["raises.py"]),
    "cookie": ({"latin.py": COOKIE}, ["latin.py"], ["latin.py"]),
    "syntax": ({"syntax.py": SYNTAX}, ["syntax.py"], ["syntax.py"]),
    "code": ({}, ["-c", CODE, "a"], ["-c", CODE, "a"]),
    "recursion": ({"deep.py": RECURSION}, ["deep.py"], ["deep.py"]),
    "recursion_module": ({"deepmod.py": RECURSION}, ["-m", "deepmod"], ["-m", "deepmod"]),
    "recursion_code": ({}, ["-c", RECURSION], ["-c", RECURSION]),
}


def _without_memtrace_lines(stderr: bytes, capture: Path) -> bytes:
    """Drop the line(s) where memtrace names its capture file; keep everything else."""
    lines = stderr.splitlines(keepends=True)
    return b"".join(line for line in lines if capture.name.encode() not in line)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("native", [False, True], ids=["plain", "native"])
def test_traced_program_is_unchanged(tmp_path, mt, case, native):
    files, plain_args, traced_args = CASES[case]
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            (tmp_path / name).write_bytes(text)
        else:
            (tmp_path / name).write_text(text)
    stdin = b"hello\x00\xffworld"
    untraced = mt.plain(*plain_args, cwd=tmp_path, input=stdin)
    capture = tmp_path / "out.mtrace"
    options = ["--native"] if native else []
    traced = mt.cli("run", *options, "-o", str(capture), *traced_args, cwd=tmp_path, input=stdin)
    assert traced.stdout == untraced.stdout
    assert _without_memtrace_lines(traced.stderr, capture) == untraced.stderr
    assert traced.returncode == untraced.returncode
    assert capture.exists()
    assert mt.stats(capture)["complete"] is True


@pytest.mark.parametrize("how", ["script", "module", "code"])
def test_program_recurses_as_deep_in_c_calls(tmp_path, mt, how):
    """Run by the `memtrace` console script, as users run it. (Under `python -m memtrace_tui`
    memtrace's own start runs runpy's code once, and from 3.12 the interpreter has then
    specialized its call of exec, which costs a C level less: a `-m` program gets one more.)"""
    (tmp_path / "cdeep.py").write_text(C_RECURSION)
    args = {"script": ["cdeep.py"], "module": ["-m", "cdeep"], "code": ["-c", C_RECURSION]}[how]
    untraced = mt.plain(*args, cwd=tmp_path)
    assert untraced.returncode == 0 and untraced.stdout.startswith(b"deepest nested list ")
    capture = tmp_path / "cdeep.mtrace"
    traced = subprocess.run(
        [str(Path(sys.executable).parent / "memtrace"), "run", "-o", str(capture), *args],
        cwd=tmp_path, env=mt.env, capture_output=True, timeout=120)
    assert traced.returncode == 0, traced.stderr.decode()
    assert traced.stdout == untraced.stdout


def test_expected_statuses_of_the_untraced_cases(tmp_path, mt):
    """The comparison above is only worth something if the cases really differ."""
    for name, text in {"exit3.py": EXIT3, "msg.py": EXIT_MESSAGE, "raises.py": RAISES}.items():
        (tmp_path / name).write_text(text)
    assert mt.plain("exit3.py", cwd=tmp_path).returncode == 3
    assert mt.plain("msg.py", cwd=tmp_path).returncode == 1
    raised = mt.plain("raises.py", cwd=tmp_path)
    assert raised.returncode == 1 and b"ValueError: wrapped" in raised.stderr


def test_default_output_name_is_printed_on_stderr(tmp_path, mt):
    (tmp_path / "hello.py").write_text("print('hi')\n")
    traced = mt.cli("run", "hello.py", cwd=tmp_path)
    assert traced.returncode == 0 and traced.stdout == b"hi\n"
    captures = list(tmp_path.glob("memtrace-hello.*.mtrace"))
    assert len(captures) == 1, list(tmp_path.iterdir())
    pid = captures[0].name.split(".")[1]
    assert pid.isdigit()
    assert captures[0].name.encode() in traced.stderr
    assert mt.stats(captures[0])["pid"] == int(pid)


# Since 3.11 a thread's Python frames live in 16 KiB chunks: a call that crosses a chunk's end
# maps a chunk, its return unmaps it. Calls at every depth up to 600 cross ends at depths
# that depend on where the program's first frame lies; one frame more below it (SHIFT=1)
# moves every crossing, so the count of maps says whether memtrace's frames moved them.
CHUNKS = """\
import ctypes
import os

chunk_maps = ctypes.CDLL(None).mt_chunk_maps
chunk_maps.restype = ctypes.c_long


def down(n):
    if n:
        down(n - 1)  # @down


def sweep(shift):
    if shift:
        return sweep(shift - 1)
    before = chunk_maps()
    for depth in range(1, 600):
        down(depth)  # @sweep
    return chunk_maps() - before


print("frame chunk maps", sweep(int(os.environ.get("SHIFT", "0"))))
"""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 keeps frames as objects, in no chunks")
@pytest.mark.parametrize("how", ["script", "module", "code"])
def test_program_maps_frame_chunks_as_untraced(tmp_path, mt, how):
    (tmp_path / "chunks.py").write_text(CHUNKS)
    args = {"script": ["chunks.py"], "module": ["-m", "chunks"], "code": ["-c", CHUNKS]}[how]
    env = dict(mt.env, LD_PRELOAD=str(mt.cbuild.mtchunkmaps))

    def untraced(shift: str) -> bytes:
        proc = subprocess.run([mt.python, *args], cwd=tmp_path, capture_output=True,
                              env=dict(env, SHIFT=shift), timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout

    plain = untraced("0")
    maps = int(plain.split()[-1])
    assert maps > 100, plain  # the sweep crosses chunk ends
    assert untraced("1") != plain  # and a frame more below it would change the count
    capture = tmp_path / "chunks.mtrace"
    traced = run_memtrace("run", "-o", str(capture), *args, cwd=tmp_path, env=env)
    assert traced.returncode == 0, traced.stderr.decode()
    assert traced.stdout == plain
    # and the capture holds exactly those maps, at the calls that made them
    from memtrace_core.reader import read_capture

    reader, lines = read_capture(capture), mt.marker_lines(CHUNKS)
    made = [totals_at(reader, name, lines[name]) for name in ("down", "sweep")]
    assert sum(t.count for t in made) == maps
    assert sum(t.bytes for t in made) == maps * 16384
    assert sum(t.leaked_count for t in made) == 0
