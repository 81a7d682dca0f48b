"""memtrace's own ptrace injector never harms the target: targets blocked in sleep or read,
busy in Python or in C, with 8 threads, are attached, traced and detached three times in a
row and print what an untraced run prints (sleep durations, every line read, exact results)
and exit with their own status; vector register state survives 20 attaches; a signal sent
while a thread is seized is delivered exactly once; a target killed mid-injection leaves a
clean error; gdb older than 14 is refused where the CPU's XSAVE area is larger than it
can restore."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from memtrace_core.attach import image as image_mod
from memtrace_core.attach import inject, injector
from memtrace_core.attach.ptrace import _ptrace
from memtrace_core.reader import read_capture
from tests.attach.attach_support import (
    HERE,
    TARGET_PYTHON,
    Target,
    build_shared,
    cli_env,
    memtrace,
    target_env,
)

SLEEP = 0.1
# A sleep is never cut short; it may end late, by the time the agent holds the GIL while it
# starts (imports, on a cold and loaded 2-core machine, can take most of a second): the
# bound only catches a sleep left hanging.
SLEEP_SLACK = 3.0


def _cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


@pytest.fixture(scope="session")
def harmlib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """harmlib.c with gcc -O2, AVX2 vectors where the CPU has them."""
    arch = ["-mavx2"] if "avx2" in _cpu_flags() else []
    return build_shared(HERE / "harmlib.c", tmp_path_factory.mktemp("harmlib") / "libharm.so",
                        "-O2", *arch)


@pytest.fixture
def harm_target(tmp_path: Path, harmlib: Path):
    started: list[Target] = []

    def start(mode: str, stdin: int = subprocess.DEVNULL) -> Target:
        stop = tmp_path / f"stop-{len(started)}"
        target = Target([TARGET_PYTHON, str(HERE / "harm_target.py"), mode],
                        target_env(HARMLIB=str(harmlib), STOP_FILE=str(stop)),
                        cwd=tmp_path, stop_file=stop, stdin=stdin)
        started.append(target)
        target.wait_line("ready")
        return target

    yield start
    for target in started:
        target.kill()


def attach_once(pid: int, out: Path, duration: float = 0.5, *extra: str) -> None:
    proc = memtrace("attach", str(pid), "-o", str(out), "--duration", str(duration), *extra)
    assert proc.returncode == 0, proc.stderr
    assert "detached from process" in proc.stderr, proc.stderr
    reader = read_capture(out)
    assert reader.header["attached"] is True
    assert reader.complete, "no trailer: detach was not clean"


def check_output(lines: list[str]) -> None:
    """What an untraced run prints: sleeps never short nor cut, results all equal."""
    slept = [float(line.split()[2]) for line in lines if line.startswith("slept ")]
    for took in slept:
        assert SLEEP <= took < SLEEP + SLEEP_SLACK, lines
    results: dict[tuple[str, str], set[str]] = {}
    for line in lines:
        kind, *rest = line.split()
        if kind in ("py", "c", "ref"):
            tag, *value = rest
            results.setdefault(("c" if kind == "ref" else kind, tag), set()).add(value[0])
    for key, values in results.items():
        assert len(values) == 1, f"{key}: results changed: {values}"
    assert not [line for line in lines if "rror" in line], lines


@pytest.mark.parametrize("mode", ["sleep", "python", "c", "threads"])
def test_attach_three_times_leaves_target_unharmed(harm_target, tmp_path, mode):
    target = harm_target(mode)
    for i in range(3):
        attach_once(target.pid, tmp_path / f"{mode}-{i}.mtrace")
    assert target.finish(timeout=20) == 7
    target.read_all()
    assert target.stderr() == ""
    check_output(target.lines)
    assert sum(line.startswith(("slept", "py", "c ")) for line in target.lines) >= 3


def test_blocking_read_survives_three_attaches(harm_target, tmp_path):
    target = harm_target("read", stdin=subprocess.PIPE)
    assert target.proc.stdin is not None
    sent: list[str] = []
    stop = threading.Event()

    def feed() -> None:
        n = 0
        while not stop.is_set():
            line = f"line-{n}"
            target.proc.stdin.write(line + "\n")
            target.proc.stdin.flush()
            sent.append(line)
            n += 1
            time.sleep(0.15)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        for i in range(3):
            attach_once(target.pid, tmp_path / f"read-{i}.mtrace")
    finally:
        stop.set()
        feeder.join()
    target.proc.stdin.write("end\n")
    target.proc.stdin.flush()
    assert target.finish(timeout=20) == 7
    target.read_all()
    assert target.stderr() == ""
    assert [line.split()[1] for line in target.lines if line.startswith("read ")] == sent


def test_vector_state_exact_after_20_attaches(harm_target, tmp_path):
    """The thread is seized in the middle of an AVX loop 40 times (attach and detach)."""
    target = harm_target("c")
    for _ in range(20):
        attach_once(target.pid, tmp_path / "v.mtrace", 0.05, "--force")
    assert target.finish(timeout=20) == 7
    target.read_all()
    assert target.stderr() == ""
    ref = {line.split()[2] for line in target.lines if line.startswith("ref ")}
    got = {line.split()[2] for line in target.lines if line.startswith("c ")}
    assert len(ref) == 1 and got == ref, (ref, got)
    assert len([line for line in target.lines if line.startswith("c ")]) >= 3


def _libc_function(pid: int, name: str) -> int:
    image = image_mod.read_image(pid)
    libc = next(p for p in image.objects() if "/libc.so" in p)
    return image.load_bias(libc) + image_mod.dynamic_symbols(image.file(libc))[name][0]


def _remote_call_page(thread, funcs) -> int:
    base = injector._mmap(thread, funcs, injector.PAGE + injector.STACK)
    thread.write(base, _ptrace.trampoline_bytes())
    assert thread.syscall(funcs.syscall_insn, injector.SYS_MPROTECT,
                          (base, injector.PAGE, injector.PROT_READ | injector.PROT_EXEC)) == 0
    return base


def test_signal_while_seized_is_delivered_exactly_once(harm_target):
    target = harm_target("signal")
    pid = target.pid
    funcs = image_mod.find_loader_functions(image_mod.read_image(pid))
    getpid = _libc_function(pid, "getpid")
    with _ptrace.RemoteThread(pid, pid) as thread:
        assert thread.in_syscall  # blocked in time.sleep
        os.kill(pid, signal.SIGUSR1)  # the only thread is held: the signal waits
        time.sleep(0.1)
        base = _remote_call_page(thread, funcs)
        region = injector.PAGE + injector.STACK
        assert thread.call(base, getpid, (), base + region) == pid
        assert thread.pending_signals == [signal.SIGUSR1]
        injector._unmap(thread, funcs, base, region)
    assert target.wait_line("usr1") == "usr1 1"
    time.sleep(0.5)
    assert target.finish() == 7
    target.read_all()
    assert [line for line in target.lines if line.startswith("usr1")] == ["usr1 1"]
    assert target.stderr() == ""


def test_signals_in_lockstep_during_attaches_none_lost_none_doubled(harm_target, tmp_path):
    """SIGUSR1 sent again as soon as the last one is acknowledged, while attaching."""
    target = harm_target("signal")
    acks: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    sent = 0

    def send() -> None:
        nonlocal sent
        while not stop.is_set():
            os.kill(target.pid, signal.SIGUSR1)
            sent += 1
            line = target.wait_line("usr1", timeout=10)
            acks.put(line)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    for i in range(3):
        attach_once(target.pid, tmp_path / f"s-{i}.mtrace", 0.3)
    stop.set()
    sender.join(timeout=15)
    assert not sender.is_alive(), "a signal was never delivered"
    counts = [int(acks.get_nowait().split()[1]) for _ in range(acks.qsize())]
    assert counts == list(range(1, sent + 1))
    assert target.finish() == 7


def test_target_killed_while_seized_is_a_clean_error(harm_target):
    target = harm_target("sleep")
    pid = target.pid
    funcs = image_mod.find_loader_functions(image_mod.read_image(pid))
    thread = _ptrace.RemoteThread(pid, pid)
    try:
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(_ptrace.RemoteError) as info:
            injector._mmap(thread, funcs, injector.PAGE)
        assert info.value.code == _ptrace.GONE
    finally:
        thread.release()  # nothing left to restore: no error
    assert target.proc.wait(timeout=5) == -signal.SIGKILL


def test_whole_extended_state_is_saved(harm_target):
    target = harm_target("sleep")
    with _ptrace.RemoteThread(target.pid, target.pid) as thread:
        if "xsave" in _cpu_flags():
            assert thread.xstate_size >= _ptrace.xsave_size() > 512
        else:
            assert thread.xstate_size == 512  # the FXSAVE area


def test_attach_needs_no_gdb(start_target, tmp_path):
    target = start_target()
    target.wait_line("leak 1 ")
    out = tmp_path / "x.mtrace"
    proc = memtrace("attach", str(target.pid), "-o", str(out), "--duration", "0.5",
                    env=cli_env(PATH="/nonexistent"))
    assert proc.returncode == 0, proc.stderr
    assert read_capture(out).complete


def test_gdb_refusal_rule():
    refused = inject.gdb_refusal((13, 1), 11008)
    assert refused is not None and "11008-byte" in refused and "GDB 14" in refused
    assert inject.gdb_refusal((14, 1), 11008) is None
    assert inject.gdb_refusal((13, 1), 2696) is None
    assert inject.gdb_refusal(None, 11008) is None


def test_old_gdb_refused_only_where_it_would_harm(start_target, tmp_path):
    """A fake gdb 13.1 on PATH with --method gdb: refused on CPUs whose XSAVE area exceeds
    gdb 13's buffer (AMX), run (and failing on its own) elsewhere."""
    target = start_target()
    target.wait_line("leak 1 ")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    ran = tmp_path / "gdb-ran"
    gdb = bindir / "gdb"
    gdb.write_text("#!/bin/sh\nif [ \"$1\" = --version ]; then\n"
                   "  echo 'GNU gdb (Debian 13.1-3) 13.1'; exit 0\nfi\n"
                   f"touch {ran}\necho 'not a real gdb'\n")
    gdb.chmod(0o755)
    proc = memtrace("attach", str(target.pid), "-o", str(tmp_path / "x.mtrace"),
                    "--method", "gdb", env=cli_env(PATH=f"{bindir}:{os.environ['PATH']}"))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    if _ptrace.xsave_size() > inject.GDB_FIXED_XSAVE:
        assert "gdb 13.1 cannot restore" in lines[0] and "drop --method gdb" in lines[0]
        assert not ran.exists()
    else:
        assert ran.exists() and "not a real gdb" in lines[0]
    assert target.proc.poll() is None
    assert target.finish() == 0


def test_real_gdb_method_attaches_or_is_refused(start_target, tmp_path):
    """`--method gdb` with the machine's own gdb: works where that gdb can restore the CPU's
    state, and is refused in one line where it cannot (gdb 13 on AMX hosts)."""
    gdb = shutil.which("gdb")
    assert gdb is not None, "install.sh installs gdb"
    target = start_target()
    target.wait_line("leak 1 ")
    out = tmp_path / "x.mtrace"
    proc = memtrace("attach", str(target.pid), "-o", str(out), "--duration", "0.5",
                    "--method", "gdb")
    refusal = inject.gdb_refusal(inject.gdb_version(gdb), _ptrace.xsave_size())
    if refusal:
        assert proc.returncode == 1 and proc.stderr.strip() == f"memtrace: error: {refusal}"
        assert not out.exists()
    else:
        assert proc.returncode == 0, proc.stderr
        assert read_capture(out).complete
    assert target.finish() == 0
    assert target.stderr() == ""
