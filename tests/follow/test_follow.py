"""Live sessions that survive a dropped terminal: `live --background` traces into a file,
`view --follow` (tmux) and `top --follow` read it while it grows, any number at once; a
viewer that dies changes nothing for the program; a killed program ends a follower with
"incomplete"; a capture appended in torn pieces is never misread; `attach -o` without
--duration survives its terminal and stops with `attach --stop PID`."""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from memtrace_core.capture import take_writer_lock
from memtrace_core.errors import UserError
from memtrace_core.reader import StreamReader, read_capture
from memtrace_core.reader.follow import CaptureFollower
from tests.cli import MEMTRACE, run_memtrace
from tests.cli import memtrace_env as child_env
from tests.tmux_support import Tmux

BLOCK = 123_457  # bytearray(123_456) mallocs 123_457 bytes
LEAKER = f"""\
import os, sys, time

keep = []


def grow_cache():
    keep.append(bytearray({BLOCK - 1}))


for i in range(int(sys.argv[1])):
    grow_cache()
    print("leaked", i + 1, flush=True)
    time.sleep(float(sys.argv[2]))
while os.path.exists("hold"):
    time.sleep(0.05)
sys.exit(3)
"""


def run_cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_memtrace(*args, cwd=cwd, env=child_env(), timeout=timeout, text=True)


def background(tmp_path: Path, rounds: int, pause: float) -> tuple[Path, int]:
    (tmp_path / "leaker.py").write_text(LEAKER)
    out = tmp_path / "bg.mtrace"
    proc = run_cli("live", "--background", "-o", str(out), "leaker.py", str(rounds),
                   str(pause), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"memtrace view --follow {out}" in proc.stderr
    pid = int(proc.stderr.split("(pid ")[1].split(")")[0])
    return out, pid


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.05)


def finished_capture(tmp_path: Path, rounds: int) -> tuple[Path, bytes]:
    """The leaker's capture, run to its end (exit status 3), and its bytes."""
    (tmp_path / "leaker.py").write_text(LEAKER)
    source = tmp_path / "source.mtrace"
    proc = run_cli("run", "-o", str(source), "leaker.py", str(rounds), "0", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    return source, source.read_bytes()


def replay_exact(path: Path, records: int) -> StreamReader:
    """Byte by byte near the target, so the reader stops exactly after `records` records."""
    follower = CaptureFollower(str(path))
    stream = b""
    while chunk := follower.read():
        stream += chunk
    follower.close()
    reader = StreamReader()
    pos = 0
    while reader.records < records:
        assert pos < len(stream), "the capture has fewer records"
        reader.feed(stream[pos:pos + 1])
        pos += 1
    return reader


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is required")
def test_background_follow_lose_viewer_follow_again(tmp_path):
    out, pid = background(tmp_path, rounds=60, pause=0.1)
    env = child_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    command = " ".join(shlex.quote(a) for a in (*MEMTRACE, "view",
                                                "--follow", str(out)))
    first = Tmux(command, tmp_path, env)
    try:
        first.wait_for(r"running")
        first.wait_for(r"grow_cache", timeout=30, keys=("c", "Home", "e"))
    finally:
        first.close()  # the terminal is gone: the viewer dies with it
    size = out.stat().st_size
    time.sleep(1.0)
    assert alive(pid), "the program must not notice its viewer going"
    assert out.stat().st_size > size, "still traced: the capture keeps growing"
    wait_gone(pid)
    reader = read_capture(out)
    assert reader.complete and reader.trailer["exit_code"] == 3
    again = Tmux(command, tmp_path, env)
    try:
        screen = again.wait_for(r"exited with status 3", timeout=30)
        screen = again.wait_for(r"grow_cache", timeout=30, keys=("c", "Home", "e"))
        row = next(line for line in screen.splitlines() if "grow_cache" in line)
        assert "7.1 MiB" in row  # 60 blocks of 123,457 B: the whole history, from the start
        again.keys("q")
        again.wait_for(r"EXIT=0")
    finally:
        again.close()
    assert reader.heap_bytes >= 60 * BLOCK


def top_follow(path: Path, cwd: Path, interval: float = 0.5) -> subprocess.Popen[str]:
    return subprocess.Popen([*MEMTRACE, "top", "--follow",
                             str(path), "--json", "--interval", str(interval), "-n", "3"],
                            cwd=cwd, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_top_follow_heap_is_the_captures_heap_at_each_interval(tmp_path):
    out, pid = background(tmp_path, rounds=40, pause=0.1)
    follower = top_follow(out, tmp_path)
    stdout, stderr = follower.communicate(timeout=120)
    assert follower.returncode == 0, stderr
    snaps = [json.loads(line) for line in stdout.splitlines()]
    assert len(snaps) >= 4
    assert snaps[-1]["status"] == "exited with status 3"
    statuses = [s["status"] for s in snaps]
    first_exit = statuses.index("exited with status 3")  # once the TRAILER is read
    assert statuses[:first_exit] == ["running"] * first_exit
    assert len(snaps) - first_exit == 1, "the same end is never printed twice"
    for snap in snaps:
        again = replay_exact(out, snap["records"])
        assert snap["heap_bytes"] == again.heap_bytes
        assert snap["peak_bytes"] == again.peak_bytes
        if snap["rows"]:
            assert snap["rows"][0]["function"] == "grow_cache"
            leaks = snap["rows"][0]["count"]
            assert snap["rows"][0]["bytes"] == leaks * BLOCK
    assert snaps[-1]["rows"][0]["bytes"] == 40 * BLOCK
    heaps = [s["heap_bytes"] for s in snaps]
    # the heap grows by the leak; between two snapshots the interpreter may have freed a
    # few temporary objects (hundreds of bytes), never a leaked block
    assert all(b > a - BLOCK for a, b in zip(heaps, heaps[1:], strict=False)), heaps
    leaked = [s["rows"][0]["bytes"] for s in snaps if s["rows"]]
    assert leaked == sorted(leaked)


def test_two_followers_show_the_same_numbers(tmp_path):
    out, pid = background(tmp_path, rounds=30, pause=0.05)
    a, b = top_follow(out, tmp_path), top_follow(out, tmp_path)
    last = []
    for proc in (a, b):
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        last.append(json.loads(stdout.splitlines()[-1]))
    assert last[0] == last[1]
    assert last[0]["rows"][0]["bytes"] == 30 * BLOCK


def test_killed_program_ends_a_follower_incomplete(tmp_path):
    (tmp_path / "hold").touch()  # the program waits at the end: it is killed there
    out, pid = background(tmp_path, rounds=10, pause=0.05)
    follower = top_follow(out, tmp_path, interval=0.3)
    time.sleep(2.0)
    os.kill(pid, signal.SIGKILL)
    stdout, stderr = follower.communicate(timeout=60)
    assert follower.returncode == 0, stderr
    last = json.loads(stdout.splitlines()[-1])
    assert last["status"] == "incomplete"
    assert last["rows"][0]["bytes"] == 10 * BLOCK


def test_torn_writes_are_waited_for_never_misread(tmp_path):
    """A finished capture appended in random pieces (1-64 bytes, torn zstd blocks and torn
    records) while a follower reads it: no error, and the end is the whole capture."""
    source, data = finished_capture(tmp_path, rounds=25)
    growing = tmp_path / "growing.mtrace"
    fd = os.open(growing, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    take_writer_lock(fd)
    follower = top_follow(growing, tmp_path, interval=0.05)
    rng = random.Random(7)
    lines: list[str] = []
    first_line = threading.Event()

    def read_lines() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.append(line)
            first_line.set()

    def write_slowly() -> None:
        # the last byte waits for the follower's first snapshot, so the follower is seen
        # reading a capture that is still growing however slowly it starts under load
        pos = 0
        while pos < len(data):
            if pos == len(data) - 1:
                first_line.wait(timeout=120)
            n = min(rng.randint(1, 64), len(data) - 1 - pos) or 1
            os.write(fd, data[pos:pos + n])
            pos += n
            time.sleep(0.01)
        os.close(fd)  # the lock goes with it

    reader = threading.Thread(target=read_lines)
    writer = threading.Thread(target=write_slowly)
    reader.start()
    writer.start()
    follower.wait(timeout=180)
    writer.join()
    reader.join()
    assert follower.stderr is not None
    stderr = follower.stderr.read()
    stdout = "".join(lines)
    assert follower.returncode == 0, stderr
    assert stderr == ""
    snaps = [json.loads(line) for line in stdout.splitlines()]
    whole = read_capture(source)
    assert len(snaps) >= 2 and snaps[0]["records"] < whole.records  # read while it grew
    assert snaps[-1]["status"] == "exited with status 3"
    assert snaps[-1]["records"] == whole.records
    assert snaps[-1]["heap_bytes"] == whole.heap_bytes


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is required")
def test_attach_without_duration_survives_its_terminal_and_stops_on_request(tmp_path):
    (tmp_path / "leaker.py").write_text(LEAKER)
    (tmp_path / "hold").touch()
    target = subprocess.Popen([os.path.realpath(sys.executable), "leaker.py", "400", "0.05"],
                              cwd=tmp_path, stdout=subprocess.PIPE, text=True,
                              env={"PATH": os.environ["PATH"]})
    try:
        assert target.stdout is not None
        target.stdout.readline()
        out = tmp_path / "att.mtrace"
        command = " ".join(shlex.quote(a) for a in (*MEMTRACE,
                                                    "attach", str(target.pid), "-o", str(out)))
        term = Tmux(command, tmp_path, child_env())
        term.wait_for(r"follow it with: memtrace view --follow", timeout=30)
        term.close()  # SIGHUP: the terminal is gone
        size = out.stat().st_size
        time.sleep(1.0)
        assert out.stat().st_size > size, "still recording after the terminal closed"
        stop = run_cli("attach", "--stop", str(target.pid), cwd=tmp_path)
        assert stop.returncode == 0, stop.stderr
        assert f"stopped tracing process {target.pid}" in stop.stderr
        reader = read_capture(out)
        assert reader.complete, "a clean detach writes the trailer"
        assert reader.header["attached"] is True
        assert target.poll() is None, "the target runs on"
        again = run_cli("attach", "--stop", str(target.pid), cwd=tmp_path)
        assert again.returncode == 1
        assert again.stderr.strip() == (f"memtrace: error: no memtrace attach is tracing "
                                        f"process {target.pid}")
    finally:
        (tmp_path / "hold").unlink(missing_ok=True)
        target.kill()
        target.wait()


def test_a_capture_locked_just_after_its_creation_is_followed(mt, tmp_path):
    """A writer creates its file, then takes its lock: a follower that opens the file in
    between (empty, nobody holding it) waits a moment instead of calling it empty; an empty
    file that nobody takes is still refused, with its one-line reason."""
    source, data = finished_capture(tmp_path, rounds=3)
    late = tmp_path / "late.mtrace"
    fd = os.open(late, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    def lock_late() -> None:
        time.sleep(0.3)
        take_writer_lock(fd)
        os.write(fd, data)
        os.close(fd)

    writer = threading.Thread(target=lock_late)
    writer.start()
    follower = CaptureFollower(str(late), wait_s=30)
    stream = b""
    while chunk := follower.read():
        stream += chunk
    writer.join()
    while chunk := follower.read():
        stream += chunk
    follower.close()
    reader = StreamReader()
    reader.feed(stream)
    reader.finish()
    whole = read_capture(source)
    assert reader.complete and reader.records == whole.records
    assert reader.heap_bytes == whole.heap_bytes
    # the three blocks, exactly; on 3.10 the module's globals dict also grows (576 B live)
    # when line 1 binds its names: a real allocation of the program, so not in BLOCK's sum
    leaks = mt.stats(source)["top_leaking_locations"]
    grown = [(loc["leaked_bytes"], loc["leaked_count"]) for loc in leaks
             if loc["function"] == "grow_cache"]
    assert grown == [(3 * BLOCK, 3)], leaks
    assert whole.heap_bytes == sum(loc["leaked_bytes"] for loc in leaks)

    empty = tmp_path / "empty.mtrace"
    empty.touch()
    started = time.monotonic()
    with pytest.raises(UserError, match="empty file, not a memtrace capture"):
        CaptureFollower(str(empty), wait_s=30)
    assert time.monotonic() - started < 10  # a moment, not the whole wait
