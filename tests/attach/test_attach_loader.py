"""After attach (issue 19): a library's dlopen of a bare soname through its own $ORIGIN
search path still works in the target and is traced, and a target that exits while attached
(sys.exit, or libc exit() without interpreter shutdown) ends the capture with its real exit
status."""

from __future__ import annotations

import subprocess

import pytest

from memtrace_core.reader import read_capture
from tests.attach.attach_support import TARGET_PYTHON, Target, cli_env, target_env
from tests.cli import MEMTRACE

DEP_BLOCK = 7_300_001  # tests/cfixtures/mtrpathdep.c

TARGET = """\
import ctypes
import os
import sys
import time

lib = ctypes.CDLL(sys.argv[1])
print("ready", flush=True)
while not os.path.exists("go"):
    time.sleep(0.02)
print("loaded", lib.mt_rpath_load(), flush=True)
while not os.path.exists("stop"):
    time.sleep(0.02)
if sys.argv[2] == "libc":
    ctypes.CDLL(None).exit(9)
sys.exit(7)
"""


@pytest.mark.parametrize(("how", "status"), [("sys", 7), ("libc", 9)])
def test_rpath_dlopen_after_attach_and_the_exit_status(tmp_path, cbuild, how, status):
    (tmp_path / "target.py").write_text(TARGET)
    target = Target([TARGET_PYTHON, str(tmp_path / "target.py"), str(cbuild.mtrpath["runpath"]),
                     how], target_env(), cwd=tmp_path)
    try:
        target.wait_line("ready")
        capture = tmp_path / "attached.mtrace"
        cli = subprocess.Popen([*MEMTRACE, "attach",
                                str(target.pid), "-o", str(capture)], env=cli_env(),
                               stderr=subprocess.PIPE, text=True)
        assert cli.stderr is not None
        assert "attached to process" in cli.stderr.readline()
        (tmp_path / "go").touch()
        assert target.wait_line("loaded") == "loaded 0"
        (tmp_path / "stop").touch()
        assert target.proc.wait(timeout=20) == status
        _, err = cli.communicate(timeout=30)
        assert cli.returncode == 0, err
    finally:
        target.kill()
    assert "cannot open shared object" not in target.stderr()
    reader = read_capture(capture)
    assert reader.complete and reader.trailer["exit_code"] == status
    sizes = [size for _a, size, _sid, _k in reader.live_allocations() if size == DEP_BLOCK]
    assert sizes == [DEP_BLOCK]
