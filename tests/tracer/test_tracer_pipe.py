"""The reader closes the pipe early: tracing stops, the program finishes exactly as untraced."""

from __future__ import annotations

import os
import select
import subprocess
import time

import pytest

PIPE_SCRIPT = """\
import os
import sys
import time

import mtext

deadline = time.monotonic() + 30
while not os.path.exists("go") and time.monotonic() < deadline:
    time.sleep(0.01)
print("go seen:", os.path.exists("go"), flush=True)
blocks = [bytearray(1000 + i % 5000) for i in range(20000)]
for i in range(8):
    mtext.churn(i)
print("blocks", len(blocks), sum(len(b) for b in blocks), flush=True)
print("to stderr", file=sys.stderr)
sys.exit(5)
"""


@pytest.mark.parametrize(
    ("read_bytes", "seconds", "busy"),
    [(8, 30.0, False), (1 << 30, 1.0, False), (256 * 1024, 30.0, True)],
    ids=["idle-8B", "idle-1s", "busy-256KiB"],
)
def test_reader_closing_early_leaves_the_program_unchanged(tmp_path, mt, read_bytes, seconds, busy):
    """The reader reads READ_BYTES (or for SECONDS) and closes: while the program waits
    (idle), or while it allocates flat out (busy: it never waits)."""
    script = tmp_path / "prog.py"
    script.write_text(PIPE_SCRIPT)
    (tmp_path / "go").touch()
    untraced = mt.plain("prog.py", cwd=tmp_path, timeout=60)
    (tmp_path / "go").unlink()
    assert untraced.returncode == 5

    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [mt.python, "-m", "memtrace_core.tracer.runner", "--fd", str(write_end), "prog.py"],
        cwd=tmp_path,
        env=mt.env,
        pass_fds=(write_end,),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(write_end)
    if busy:
        (tmp_path / "go").touch()
    try:
        data = b""
        deadline = time.monotonic() + seconds
        while len(data) < read_bytes and time.monotonic() < deadline:
            ready, _w, _x = select.select([read_end], [], [], 0.5)
            if ready:
                chunk = os.read(read_end, read_bytes - len(data))
                if not chunk:
                    break
                data += chunk
        assert data[:8] == b"MEMTRACE", data[:16]
    finally:
        os.close(read_end)
        (tmp_path / "go").touch()
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the traced program hung after the reader closed the pipe")
    assert proc.returncode == untraced.returncode
    assert stdout == untraced.stdout
    assert stderr == untraced.stderr
