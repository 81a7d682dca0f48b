"""mt_recorder_start's results are named (recorder.h's mt_start_result) and each failure
has its own one-line message; a second start in a traced process is refused cleanly and
the first recording goes on to a complete capture."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from memtrace_core.reader import read_capture
from memtrace_core.tracer import _tracer

RECORDER_H = Path(_tracer.__file__).with_name("recorder.h").read_text()

SECOND_START = """
import os, sys
from memtrace_core.tracer import _tracer
from memtrace_core.tracer.header import header_record
header = header_record({"format": _tracer.FORMAT_VERSION, "pid": os.getpid()})
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
_tracer.start(fd, False, False, header)
try:
    _tracer.start(fd, False, False, header)
except _tracer.TracerError as exc:
    print("refused:", exc)
x = bytearray(123457)
_tracer.stop(0)
"""


def test_every_start_failure_has_a_message():
    codes = dict(re.findall(r"(MT_START_\w+) = (-?\d+)", RECORDER_H))
    assert codes["MT_START_OK"] == "0" and len(codes) == 4
    messages = _tracer._START_ERRORS
    assert sorted(messages) == sorted(int(v) for k, v in codes.items() if k != "MT_START_OK")
    assert len(set(messages.values())) == len(messages)


def test_second_start_is_refused_and_the_first_recording_goes_on(tmp_path):
    capture = tmp_path / "twice.mtrace"
    proc = subprocess.run([sys.executable, "-c", SECOND_START, str(capture)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "refused: memtrace is already tracing this process\n"
    reader = read_capture(capture)
    assert reader.complete
    # bytearray(n) asks malloc for n + 1 bytes (its trailing NUL)
    assert any(size == 123458 for _addr, size, _sid, _alloc in reader.live_allocations())
