"""Attach to real running processes with real gdb: exact bytes after attach, detach leaves
the target running unharmed, attach again, --native names the C function and its inlined
helper, a target blocked in a syscall is traced within 2 s, killing memtrace is survived."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from memtrace_core.attach import channel
from memtrace_core.frames import FrameKind
from memtrace_core.reader import read_capture
from memtrace_core.symbols import ModuleMap, Symbolizer
from tests.attach.attach_support import (
    check_exact,
    cli_env,
    live_by_function,
    memtrace,
    target_env,
    wait_tasks,
)
from tests.cli import MEMTRACE


def native_names(capture: Path, function: str) -> set[tuple[str, FrameKind]]:
    """Names and kinds of the native frames under a Python function's live allocations."""
    reader = read_capture(capture)
    modules = ModuleMap(reader.maps)
    symbolizer = Symbolizer(persistent=False)
    names = set()
    for _size, nativenode in live_by_function(reader)[function].values():
        for i, ip in enumerate(reader.native_stack(nativenode)[:12]):
            found = modules.lookup(ip if i == 0 else ip - 1)
            if found is None:
                continue
            for frame in symbolizer.resolve(*found):
                names.add((frame.function, frame.kind))
    return names


def test_attach_exact_bytes_detach_and_attach_again_native(start_target, tmp_path):
    target = start_target()
    target.wait_line("ready")
    target.wait_line("leak 3 ")
    tasks = target.base_tasks()
    first = target.lines[-1].split()[4:]  # threads=N globals=M, as the program sees them

    cap1 = tmp_path / "first.mtrace"
    launched = time.time()
    proc = memtrace("attach", str(target.pid), "-o", str(cap1), "--duration", "2")
    assert proc.returncode == 0, proc.stderr
    assert read_capture(cap1).header["start_time"] - launched < 5  # tracing began within 5 s
    assert "detached from process" in proc.stderr
    assert wait_tasks(target, tasks) == tasks, "a thread of memtrace is left in the target"
    n = target.last_leak()
    target.wait_line(f"leak {n + 3} ")  # still alive and printing
    check_exact(cap1, target.lines, minimum=10)

    cap2 = tmp_path / "second.mtrace"
    proc = memtrace("attach", str(target.pid), "--native", "-o", str(cap2), "--duration", "1.5")
    assert proc.returncode == 0, proc.stderr
    assert wait_tasks(target, tasks) == tasks
    n = target.last_leak()
    target.wait_line(f"leak {n + 3} ")
    check_exact(cap2, target.lines, minimum=8)
    names = native_names(cap2, "leak_c")
    assert ("attach_leak_c", FrameKind.NATIVE) in names, names
    assert ("attach_leak_helper", FrameKind.INLINE) in names, names

    assert target.finish() == 0
    assert target.stderr() == ""
    seen = {tuple(line.split()[4:6]) for line in target.lines if line.startswith("leak ")}
    assert seen == {tuple(first[:2])}, "thread count or __main__ globals changed by attach"
    last = [line for line in target.lines if line.startswith("leak ")][-1]
    assert last.endswith("boot=threading"), "thread-name wrapper left installed"


def test_target_blocked_in_sleep_and_read_is_traced_within_2s(start_target, tmp_path):
    target = start_target("--sleep", "4", "--read", stdin=subprocess.PIPE)
    target.wait_line("sleeping")
    time.sleep(0.3)
    capture = tmp_path / "sleep.mtrace"
    launched = time.time()
    proc = memtrace("attach", str(target.pid), "-o", str(capture), "--duration", "0.5")
    assert proc.returncode == 0, proc.stderr
    reader = read_capture(capture)
    assert reader.complete
    assert reader.header["start_time"] - launched < 2.0
    slept = float(target.wait_line("slept").split()[1])
    assert 4.0 <= slept < 4.5, "the target's sleep was cut short or stretched"

    # Now blocked in a read from a pipe: attach and detach, then the read completes.
    target.wait_line("reading")
    time.sleep(0.2)
    proc = memtrace("attach", str(target.pid), "-o", str(tmp_path / "read.mtrace"),
                    "--duration", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert target.proc.stdin is not None
    target.proc.stdin.write("hello\n")
    target.proc.stdin.flush()
    assert target.wait_line("read ") == "read b'hello\\n'"
    target.wait_line("leak 2 ")
    assert target.finish() == 0
    assert target.stderr() == ""


def test_killed_memtrace_leaves_target_running_and_attach_works_again(start_target, tmp_path):
    target = start_target()
    target.wait_line("leak 2 ")
    tasks = target.base_tasks()
    capture = tmp_path / "killed.mtrace"
    cli = subprocess.Popen([*MEMTRACE, "attach", str(target.pid),
                            "-o", str(capture)], env=cli_env(), stderr=subprocess.PIPE)
    end = time.monotonic() + 30  # a hang guard: a loaded machine attaches in seconds
    while (not capture.exists() or capture.stat().st_size < 4096) and time.monotonic() < end:
        time.sleep(0.05)
    assert capture.stat().st_size >= 4096
    # The killed memtrace's own channel (its pid file names it): other directories in the
    # temp directory may belong to runs that have nothing to do with this test.
    channels = {path.parent for path in Path(channel.channel_root()).glob(
        f"{channel.PREFIX}*/{channel.OWNER}") if path.read_text().strip() == str(cli.pid)}
    assert len(channels) == 1, channels
    # The target imported the agent from the copy there without writing bytecode into it (a
    # late helper thread would recreate a removed channel directory with it).
    assert not [p for d in channels for p in d.rglob("*.pyc")]
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait()
    # The tracer sees the closed FIFO, removes its hooks and its writer thread ends.
    assert wait_tasks(target, tasks) == tasks
    n = target.last_leak()
    # The next new thread removes the thread-naming wrapper nobody detached. (The lines read
    # lag the target a little: the short thread of the next tenth may have started before
    # the stop, so the one after it is checked.)
    tenth = (n // 10 + 2) * 10
    assert target.wait_line(f"leak {tenth} ").endswith("boot=threading")
    n = target.last_leak()
    target.wait_line(f"leak {n + 3} ")

    again = tmp_path / "again.mtrace"
    proc = memtrace("attach", str(target.pid), "-o", str(again), "--duration", "1")
    assert proc.returncode == 0, proc.stderr
    target.wait_line(f"leak {target.last_leak() + 3} ")
    check_exact(again, target.lines, minimum=5)
    assert not any(path.exists() for path in channels), \
        "the killed memtrace's channel directory was not swept"
    assert target.finish() == 0
    assert target.stderr() == ""


def test_target_exiting_while_attached_ends_the_capture(start_target, tmp_path):
    target = start_target()
    target.wait_line("leak 2 ")
    capture = tmp_path / "exit.mtrace"
    cli = subprocess.Popen([*MEMTRACE, "attach", str(target.pid),
                            "-o", str(capture)], env=cli_env(), stderr=subprocess.PIPE,
                           text=True)
    assert cli.stderr is not None
    assert "attached to process" in cli.stderr.readline()
    target.wait_line(f"leak {target.last_leak() + 5} ")
    assert target.finish() == 0
    _, err = cli.communicate(timeout=10)
    assert cli.returncode == 0, err
    assert f"process {target.pid} exited" in err
    reader = read_capture(capture)
    assert reader.complete  # the target's own exit wrote the trailer
    target.read_all()
    assert target.lines[-1] == "done"
    check_exact(capture, target.lines, minimum=4)
    assert target.stderr() == ""


def test_target_in_another_virtualenv_without_memtrace(start_target, tmp_path):
    """memray fails here with ModuleNotFoundError; memtrace brings its own import path."""
    venv = tmp_path / "venv"
    subprocess.run([os.path.realpath(sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True)
    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import memtrace_core"], capture_output=True,
                          cwd=tmp_path, env=target_env()).returncode != 0
    target = start_target(python=python)
    target.wait_line("leak 2 ")
    capture = tmp_path / "venv.mtrace"
    proc = memtrace("attach", str(target.pid), "-o", str(capture), "--duration", "1")
    assert proc.returncode == 0, proc.stderr
    target.wait_line(f"leak {target.last_leak() + 3} ")
    check_exact(capture, target.lines, minimum=5)
    assert target.finish() == 0
    assert target.stderr() == ""


def test_stream_faster_than_the_fifo_from_the_first_moment(start_target, tmp_path):
    """A C thread churns malloc/free: the FIFO would fill before the agent reports, so
    memtrace drains it from the first byte; attach, record and detach all succeed."""
    target = start_target("--churn")
    target.wait_line("leak 2 ")
    for i in range(2):
        capture = tmp_path / f"churn-{i}.mtrace"
        proc = memtrace("attach", str(target.pid), "-o", str(capture), "--duration", "0.5")
        assert proc.returncode == 0, proc.stderr
        reader = read_capture(capture)
        assert reader.complete
        assert reader.total_allocations > 100_000
    target.wait_line(f"leak {target.last_leak() + 2} ")
    assert target.finish() == 0
    assert target.stderr() == ""
