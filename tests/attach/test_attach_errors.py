"""Every attach error is one line on stderr, exit status 1, and leaves the target running
untouched: no such PID, not Python, another Python version, gdb missing, ptrace denied,
already traced, gdb hanging, the target exiting during attach, a GIL that is never released."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.attach.attach_support import HERE, Target, cli_env, memtrace
from tests.cli import MEMTRACE

# another CPython than the one under test (memtrace attaches to its own version only)
OTHER_PYTHONS = {(3, 12): "/root/.pyenv/versions/3.12.1/bin/python3.12",
                 (3, 11): "/usr/bin/python3.11"}
OTHER = next(((v, path) for v, path in OTHER_PYTHONS.items()
              if v != sys.version_info[:2] and os.path.exists(path)), None)
OURS = "{}.{}".format(*sys.version_info[:2])


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("memtrace: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def state(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1] for line in f if line.startswith("State:"))


def assert_untouched(target: Target) -> None:
    """Still running (not stopped), still printing, exits 0 with nothing on stderr."""
    assert target.proc.poll() is None
    assert state(target.pid) in ("S", "R")
    target.wait_line(f"leak {target.last_leak() + 2} ")
    assert target.finish() == 0
    assert target.stderr() == ""


def test_no_such_pid(tmp_path):
    child = subprocess.Popen(["true"])
    child.wait()
    proc = memtrace("attach", str(child.pid), "-o", str(tmp_path / "x.mtrace"))
    one_line_error(proc, f"no process with PID {child.pid}")
    assert not (tmp_path / "x.mtrace").exists()


def test_not_a_python_process(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        proc = memtrace("attach", str(sleeper.pid), "-o", str(tmp_path / "x.mtrace"))
        one_line_error(proc, "is not a Python process")
        assert sleeper.poll() is None and state(sleeper.pid) == "S"
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.skipif(OTHER is None, reason="needs another Python interpreter")
def test_other_python_version(tmp_path):
    assert OTHER is not None
    (major, minor), python = OTHER
    code = "import time; print('ready', flush=True); time.sleep(30)"
    target = Target([python, "-c", code], {"PATH": os.environ["PATH"]}, tmp_path)
    try:
        target.wait_line("ready")
        proc = memtrace("attach", str(target.pid), "-o", str(tmp_path / "x.mtrace"))
        one_line_error(proc, f"runs Python {major}.{minor}", f"built for Python {OURS}")
        assert state(target.pid) == "S"
    finally:
        target.kill()


def test_gdb_not_installed(start_target, tmp_path):
    target = start_target()
    target.wait_line("leak 1 ")
    proc = memtrace("attach", str(target.pid), "-o", str(tmp_path / "x.mtrace"),
                    "--method", "gdb", env=cli_env(PATH="/nonexistent"))
    one_line_error(proc, "gdb is not installed", "apt-get install gdb")
    assert not (tmp_path / "x.mtrace").exists()
    assert_untouched(target)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None
                    or not os.path.exists("/usr/bin/python3"),
                    reason="needs root and setpriv to run a target as another user")
def test_ptrace_not_permitted(tmp_path):
    code = "import time; print('ready', flush=True); time.sleep(30)"
    os.chmod(tmp_path, 0o755)
    target = Target(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                     "/usr/bin/python3", "-c", code], {"PATH": os.environ["PATH"]}, tmp_path)
    try:
        target.wait_line("ready")
        pid = target.pid  # setpriv execs the interpreter
        proc = subprocess.run(
            ["setpriv", "--bounding-set=-sys_ptrace", *MEMTRACE,
             "attach", str(pid), "-o", str(tmp_path / "x.mtrace")],
            env=cli_env(), capture_output=True, text=True, timeout=30)
        one_line_error(proc, "ptrace not permitted", "another user", "as root")
        assert state(pid) == "S"
    finally:
        target.kill()


def test_root_without_cap_sys_ptrace_on_a_non_dumpable_process(tmp_path):
    """Root whose capability was dropped (a container without SYS_PTRACE) is told so, not
    told to run as root."""
    code = ("import ctypes, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); "
            "print('ready', flush=True); time.sleep(30)")
    target = Target(["/usr/bin/python3", "-c", code], {"PATH": os.environ["PATH"]}, tmp_path)
    try:
        target.wait_line("ready")
        proc = subprocess.run(
            ["setpriv", "--bounding-set=-sys_ptrace", *MEMTRACE,
             "attach", str(target.pid), "-o", str(tmp_path / "x.mtrace")],
            env=cli_env(), capture_output=True, text=True, timeout=30)
        line = one_line_error(proc, "ptrace not permitted",
                              "root without CAP_SYS_PTRACE", "--cap-add SYS_PTRACE")
        assert "run memtrace as the process's user" not in line
        assert state(target.pid) == "S"
    finally:
        target.kill()


def test_maps_hidden_from_root_with_the_capability_names_a_security_policy(monkeypatch):
    """With CAP_SYS_PTRACE nothing memtrace can change lets it in: the message says what
    can (here the kernel's refusal is simulated; a sandbox's PID 1 does it for real)."""
    from memtrace_core.attach import target as target_mod
    from memtrace_core.errors import UserError

    real_read = target_mod._read

    def read(path: str) -> str:
        if path.endswith("/maps"):
            raise PermissionError(13, "Permission denied")
        return real_read(path)

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        monkeypatch.setattr(target_mod, "_read", read)
        monkeypatch.setattr(target_mod, "_has_cap_sys_ptrace", lambda: True)
        with pytest.raises(UserError) as err:
            target_mod.inspect(child.pid)
        assert f"cannot read /proc/{child.pid}/maps" in str(err.value)
        assert "security policy" in str(err.value)
        assert "as root" not in str(err.value)
    finally:
        child.kill()
        child.wait()


def test_already_traced_by_memtrace(tmp_path, leaklib):
    stop = tmp_path / "stop"
    target = Target([*MEMTRACE, "run", "-o",
                     str(tmp_path / "run.mtrace"), str(HERE / "attach_target.py")],
                    cli_env(LEAKLIB=str(leaklib), STOP_FILE=str(stop)), tmp_path,
                    stop_file=stop)
    try:
        target.wait_line("leak 2 ")
        proc = memtrace("attach", str(target.pid), "-o", str(tmp_path / "x.mtrace"))
        one_line_error(proc, f"process {target.pid} is already traced by memtrace")
        assert not (tmp_path / "x.mtrace").exists()
        assert_untouched(target)
    finally:
        target.kill()


def _fake_gdb(tmp_path: Path, body: str, version: str = "GNU gdb (GDB) 14.2") -> str:
    """A script in gdb's place: answers --version like a real gdb, else runs body."""
    path = tmp_path / "fake-gdb"
    path.write_text(f"#!/bin/sh\nif [ \"$1\" = --version ]; then echo '{version}'; exit 0; fi\n"
                    + body)
    path.chmod(0o755)
    return str(path)


def test_gdb_hangs_times_out_and_target_runs_on(start_target, tmp_path):
    target = start_target()
    target.wait_line("leak 1 ")
    gdb = _fake_gdb(tmp_path, "trap '' INT\nkill -STOP \"$2\"\nsleep 60\n")
    t0 = time.monotonic()
    proc = memtrace("attach", str(target.pid), "-o", str(tmp_path / "x.mtrace"),
                    "--method", "gdb", env=cli_env(MEMTRACE_GDB=gdb, MEMTRACE_ATTACH_TIMEOUT="3"))
    assert time.monotonic() - t0 < 20  # gdb's 60 s were not waited out (3 s, then SIGKILL)
    one_line_error(proc, "gdb did not finish within 3 s", "running")
    assert_untouched(target)  # SIGCONT undid the stop the hung "gdb" left behind


def test_target_exits_during_gdb_attach(start_target, tmp_path):
    target = start_target()
    target.wait_line("leak 1 ")
    gdb = _fake_gdb(tmp_path, "kill -9 \"$2\"\nsleep 0.2\necho 'ptrace: No such process.'\n")
    proc = memtrace("attach", str(target.pid), "-o", str(tmp_path / "x.mtrace"),
                    "--method", "gdb", env=cli_env(MEMTRACE_GDB=gdb))
    one_line_error(proc, f"process {target.pid} exited during attach")


def test_gil_never_released_times_out_then_target_runs_on(tmp_path):
    """The program holds the GIL until memtrace has given up (libc read() of its stdin,
    which the test writes to only then; a fixed hold could end before a slow memtrace's
    limit), then runs on: the helper thread that finally runs finds nothing to do."""
    code = (
        "import ctypes, os, threading, time\n"
        "buf = ctypes.create_string_buffer(1)\n"
        "print('ready', flush=True)\n"
        "ctypes.PyDLL(None).read(0, buf, 1)\n"  # libc read() with the GIL held all along
        "time.sleep(0.5)\n"
        "print('done', threading.active_count(), len(os.listdir('/proc/self/task')),"
        " flush=True)\n"
    )
    target = Target([os.path.realpath(sys.executable), "-c", code],
                    {"PATH": os.environ["PATH"]}, tmp_path, stdin=subprocess.PIPE)
    try:
        target.wait_line("ready")
        proc = memtrace("attach", str(target.pid), "-o", str(tmp_path / "x.mtrace"),
                        env=cli_env(MEMTRACE_ATTACH_TIMEOUT="2"))
        assert target.proc.stdin is not None
        target.proc.stdin.write("x")
        target.proc.stdin.close()
        one_line_error(proc, "did not run memtrace's helper thread within 2 s")
        assert target.wait_line("done") == "done 1 1"
        assert target.proc.wait(timeout=5) == 0
        assert target.stderr() == ""
    finally:
        target.kill()


def test_agent_held_up_after_it_started_is_waited_for(tmp_path):
    """Past the limit, an agent that has started is given time to finish (a loaded machine),
    instead of being abandoned half done. Here the helper thread is held with the GIL for
    3 s at its first import of memtrace, after it has said it runs, and the limit is 2 s.
    The hold is an audit hook of the program's, so it lands inside the agent's work every
    time; a program that waited for the started file itself could see it too late, after
    a quick agent had already finished (a CI failure on 3.10)."""
    code = (
        "import ctypes, os, sys, threading, time\n"
        "libc = ctypes.PyDLL(None)\n"
        "main = threading.get_ident()\n"
        "held = []\n"
        "def hold(event, args):\n"
        "    if (event == 'import' and not held and threading.get_ident() != main\n"
        "            and str(args[0]).startswith('memtrace_core')):\n"
        "        held.append(str(args[0]))\n"
        "        libc.sleep(3)\n"  # libc sleep() with the GIL held all along
        "sys.addaudithook(hold)\n"
        "print('ready', flush=True)\n"
        "keep = []\n"
        "while not os.path.exists(sys.argv[1]):\n"
        "    keep.append(bytearray(4096))\n"
        "    time.sleep(0.01)\n"
        "print('held at', held, flush=True)\n"
    )
    stop = tmp_path / "stop"
    target = Target([os.path.realpath(sys.executable), "-c", code, str(stop)],
                    {"PATH": os.environ["PATH"]}, tmp_path)
    try:
        target.wait_line("ready")
        out = tmp_path / "x.mtrace"
        proc = memtrace("attach", str(target.pid), "-o", str(out), "--duration", "0.5",
                        env=cli_env(MEMTRACE_ATTACH_TIMEOUT="2"))
        assert proc.returncode == 0, proc.stderr
        took = float(proc.stderr.split(" in ", 1)[1].split(" s", 1)[0])
        assert took >= 3, proc.stderr  # the GIL was held 3 s after the agent started
        assert "detached from process" in proc.stderr, proc.stderr
        from memtrace_core.reader import read_capture

        assert read_capture(out).complete
        stop.touch()
        assert target.wait_line("held at").startswith("held at ['memtrace_core")
        assert target.proc.wait(timeout=5) == 0
        assert target.stderr() == ""
    finally:
        target.kill()


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3.11") or OURS != "3.11",
                    reason="needs Debian's python3.11 and memtrace built for 3.11")
def test_non_pie_python_with_canonical_plt_is_traced(tmp_path):
    """Debian's static /usr/bin/python3.11 takes &malloc (canonical PLT entries): the tracer
    finds the real allocator behind the stub, records exact sizes and leaves it running."""
    code = (
        "import time\nkeep = []\nprint('ready', flush=True)\n"
        "for i in range(600):\n    keep.append(bytearray(99991))\n    time.sleep(0.02)\n"
    )
    target = Target(["/usr/bin/python3.11", "-c", code], {"PATH": os.environ["PATH"]}, tmp_path)
    try:
        target.wait_line("ready")
        out = tmp_path / "x.mtrace"
        proc = memtrace("attach", str(target.pid), "-o", str(out), "--duration", "1.5")
        assert proc.returncode == 0, proc.stderr
        from memtrace_core.reader import read_capture

        reader = read_capture(out)
        sizes = [size for _, size, _, _ in reader.live_allocations() if size == 99992]
        assert len(sizes) >= 10  # bytearray(99991) asks malloc for 99992 bytes
        assert os.path.exists(f"/proc/{target.pid}") and state(target.pid) in "SR"
    finally:
        target.kill()
