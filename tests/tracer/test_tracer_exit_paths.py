"""Nothing is lost however the process ends normally (issue 19): libc exit() without
interpreter shutdown (through ctypes), with C atexit handlers that allocate, exit with a
status, quick_exit and _Exit: the capture is complete, holds the leak and the real exit
status."""

from __future__ import annotations

import pytest

from tests.tracer import tracer_support as ts

KEPT = 10_000_001  # bytearray(10_000_000) mallocs its size + 1
AT_EXIT = 2_200_001  # the atexit handler of tests/cfixtures/mtproc.c

SCRIPT = """\
import ctypes
import os
import sys

libc = ctypes.CDLL(None)


def keep():
    return bytearray(10_000_000)  # @keep


kept = keep()
if "atexit" in sys.argv:
    assert ctypes.CDLL(os.environ["MT_PROC"]).mt_allocate_in_atexit() == 0
print("leaving", flush=True)
getattr(libc, sys.argv[1])(int(sys.argv[2]))
print("not reached")
"""


def _check(run, status: int) -> None:
    assert run.proc.returncode == status, run.proc.stderr.decode()
    assert run.proc.stdout == b"leaving\n"
    reader = run.reader
    assert reader.complete, "no trailer"
    assert reader.trailer["exit_code"] == status
    kept = ts.live_at(reader, "keep", run.lines["keep"])
    assert [s for _a, s, _k in kept] == [KEPT]


def test_libc_exit_without_interpreter_shutdown_ten_times(tmp_path, mt):
    for attempt in range(10):
        directory = tmp_path / str(attempt)
        directory.mkdir()
        _check(mt.trace(directory, SCRIPT, "exit", "0"), 0)


@pytest.mark.parametrize(("function", "status"),
                         [("exit", 3), ("quick_exit", 4), ("_Exit", 5), ("_exit", 6)])
def test_exit_functions_write_the_real_status(tmp_path, mt, function, status):
    untraced = mt.plain("-c", SCRIPT, function, str(status), cwd=tmp_path)
    assert untraced.returncode == status
    _check(mt.trace(tmp_path, SCRIPT, function, str(status)), status)


@pytest.mark.parametrize("native", [False, True], ids=["plain", "native"])
def test_atexit_handler_allocations_inside_exit_are_recorded(tmp_path, mt, native):
    options = ("--native",) if native else ()
    run = mt.trace(tmp_path, SCRIPT, "exit", "0", "atexit", options=options)
    _check(run, 0)
    sizes = [size for _a, size, _sid, _k in run.reader.live_allocations() if size == AT_EXIT]
    assert sizes == [AT_EXIT]


PY_ATEXIT = """\
import atexit


def late():
    global late_block
    late_block = bytearray(3_300_000)  # @late


atexit.register(late)
print("bye")
"""


def test_python_atexit_handlers_that_allocate_are_recorded(tmp_path, mt):
    run = mt.trace(tmp_path, PY_ATEXIT).check()
    assert run.reader.complete and run.reader.trailer["exit_code"] == 0
    late = ts.live_at(run.reader, "late", run.lines["late"])
    assert [s for _a, s, _k in late] == [3_300_001]


SIGNAL_SCRIPT = """\
import ctypes
import os

print("looping", flush=True)
ctypes.CDLL(os.environ["MT_PROC"]).mt_exit_from_signal()
"""


@pytest.mark.parametrize("native", [False, True], ids=["plain", "native"])
def test_exit_from_a_signal_handler_never_hangs(tmp_path, mt, native):
    """A SIGALRM handler calls exit(0) while C code allocates flat out: wherever the signal
    lands (inside the tracer too) the program ends with status 0 and leaves a readable
    capture."""
    options = ("--native",) if native else ()
    for attempt in range(5):
        directory = tmp_path / str(attempt)
        directory.mkdir()
        run = mt.trace(directory, SIGNAL_SCRIPT, options=options, timeout=60)
        assert run.proc.returncode == 0, run.proc.stderr.decode()
        assert run.proc.stdout == b"looping\n"
        assert run.reader.header["native"] is native
