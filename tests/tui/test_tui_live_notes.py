"""`memtrace live`'s notes about a run: the runner says at the program's end what the figures
cannot show (pyarrow's own memory pool, memtrace_core/tracer/runner.py), on the program's
stderr, which live keeps in its log; the app shows each note when the program ends.
Headless: the real runner, pipe, feed and app."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memtrace_core.model.build import call_tree
from memtrace_core.model.feed import enlarge_pipe
from memtrace_core.model.session import Session
from memtrace_core.reader import StreamReader
from memtrace_tui.app import MemtraceApp
from memtrace_tui.live_controller import LiveController
from tests.tui import scenarios

ARROW = """\
import pyarrow as pa

keep = pa.array([b"x" * 1000] * 10_000, type=pa.binary())
print("kept", keep.nbytes)
"""


async def _live_notes(tmp_path: Path, env: dict[str, str], source: str,
                      *options: str) -> tuple[list[str], str]:
    """Run SOURCE under live's runner in a headless app: the notes shown, and the log."""
    (tmp_path / "prog.py").write_text(source)
    log_path = tmp_path / "output.log"
    read_fd, write_fd = os.pipe()
    enlarge_pipe(read_fd)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memtrace_core.tracer.runner", "--fd", str(write_fd),
             *options, "prog.py"],
            cwd=tmp_path, pass_fds=[write_fd], stdin=subprocess.DEVNULL, stdout=log,
            stderr=log, env=env, start_new_session=True)
    os.close(write_fd)
    reader = StreamReader()
    tree = call_tree(reader)
    session = Session(reader, tree, live=True)
    controller = LiveController(proc, read_fd, session, log_path=str(log_path))
    app = MemtraceApp(session, controller)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await asyncio.to_thread(proc.wait, 60)
            for _ in range(100):  # the exit message comes from the waiter thread
                await pilot.pause(0.05)
                if session.exit_code is not None:
                    break
            await pilot.pause(0.1)
            notes = [str(n.message) for n in app._notifications]
    finally:
        if proc.poll() is None:
            proc.kill()
        tree.close()
    return notes, log_path.read_text()


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None,
                    reason="pyarrow is not installed (the bench extra)")
@scenarios.sync
async def test_live_shows_the_arrow_pool_note_when_the_program_ends(tmp_path, mt):
    notes, log = await _live_notes(tmp_path, mt.env, ARROW)
    assert log.startswith("kept ") and "memtrace: note: pyarrow allocated" in log
    assert len(notes) == 1 and notes[0].startswith("pyarrow allocated from its own "), notes
    assert "--arrow-system-pool" in notes[0]
    # with the option there is nothing to say
    notes, log = await _live_notes(tmp_path, mt.env, ARROW, "--arrow-system-pool")
    assert log.startswith("kept ") and notes == [], (notes, log)


@scenarios.sync
async def test_a_run_with_nothing_to_note_shows_no_note(tmp_path, mt):
    notes, log = await _live_notes(tmp_path, mt.env, "print('memtrace: note? no')\n")
    assert log == "memtrace: note? no\n" and notes == []
