"""Attach trust: nothing another user can write runs inside the target. A memtrace installed
in a group-writable directory is refused (naming the path, its owner and mode) unless
--allow-untrusted-paths, which warns; the target loads the checked copies in the private
channel directory (a source swapped after the check is not what runs); root attaching to
another user's process hands that user a 0700 channel and refuses an install a third user
owns; a channel left by a killed memtrace is removed by the next attach."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from memtrace_core.attach import channel, trust
from memtrace_core.attach.session import helper_library
from memtrace_core.reader import read_capture
from tests.attach.attach_support import REPO, Target, cli_env, memtrace, wait_tasks
from tests.cli import MEMTRACE

DEBIAN_PYTHON = "/usr/bin/python3.11"


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def channels_of(pid: int) -> list[Path]:
    """The channel directories memtrace `pid` owns (other sessions' channels may come and go
    while the directory is listed: one that vanishes is not ours)."""
    root = Path(channel.channel_root())
    found = []
    for name in os.listdir(root):
        if not name.startswith(channel.PREFIX):
            continue
        try:
            owner = (root / name / channel.OWNER).read_text()
        except FileNotFoundError:
            continue
        if owner == str(pid):
            found.append(root / name)
    return found


def copy_install(dest: Path) -> Path:
    """A copy of memtrace's package tree (built extensions included) to run the CLI from."""
    for package in ("memtrace_core", "memtrace_tui"):
        shutil.copytree(REPO / package, dest / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyx", "*.c", "*.h"))
    return dest


def env_for(install: Path) -> dict[str, str]:
    return cli_env(PYTHONPATH=str(install))


MODULES_TARGET = (
    "import os, sys, time\nprint('ready', flush=True)\n"
    "while not os.path.exists('stop'):\n    time.sleep(0.02)\n"
    "print('modules', *sorted(m for m in sys.modules if m.startswith('memtrace_core')))\n"
)


def test_agent_modules_are_what_the_agent_imports(tmp_path):
    """What is copied and checked covers what an attach and a detach import in the target,
    as the target itself reports (and the agent and the tracer's extension are among it)."""
    target = Target([os.path.realpath(sys.executable), "-c", MODULES_TARGET],
                    {"PATH": os.environ["PATH"]}, tmp_path)
    try:
        target.wait_line("ready")
        proc = memtrace("attach", str(target.pid), "-o", str(tmp_path / "x.mtrace"),
                        "--duration", "0.5")
        assert proc.returncode == 0, proc.stderr
        (tmp_path / "stop").touch()
        line = target.wait_line("modules")
        imported = set(line.split()[1:])
        assert {"memtrace_core.attach.agent", "memtrace_core.tracer._tracer"} <= imported
        assert imported <= set(trust.agent_modules())
    finally:
        target.kill()


def test_group_writable_install_is_refused_then_allowed_with_a_warning(start_target, tmp_path):
    install = copy_install(tmp_path / "inst")
    os.chmod(install, 0o775)
    target = start_target()
    target.wait_line("leak 1 ")
    out = tmp_path / "x.mtrace"
    proc = memtrace("attach", str(target.pid), "-o", str(out), "--duration", "0.5",
                    env=env_for(install), cwd=install)
    line = one_line_error(proc, "refusing to attach", f"{install} (owner root, mode drwxrwxr-x)",
                          "writable by group", "--allow-untrusted-paths")
    assert line.startswith("memtrace: error: ")
    assert not out.exists()
    proc = memtrace("attach", str(target.pid), "-o", str(out), "--duration", "0.5",
                    "--allow-untrusted-paths", env=env_for(install), cwd=install)
    assert proc.returncode == 0, proc.stderr
    warnings = [x for x in proc.stderr.splitlines() if x.startswith("memtrace: warning:")]
    assert len(warnings) == 1 and f"{install} (owner root" in warnings[0]
    assert read_capture(out).complete
    assert target.finish() == 0


def test_writable_file_is_refused(start_target, tmp_path):
    install = copy_install(tmp_path / "inst")
    agent_file = install / "memtrace_core" / "attach" / "agent.py"
    os.chmod(agent_file, 0o646)
    target = start_target()
    target.wait_line("leak 1 ")
    proc = memtrace("attach", str(target.pid), "-o", str(tmp_path / "x.mtrace"),
                    env=env_for(install), cwd=install)
    one_line_error(proc, f"{agent_file} (owner root, mode -rw-r--rw-) is writable by others")
    assert target.finish() == 0


def test_symlinked_helper_is_checked_where_it_points(tmp_path):
    """A helper that is a symlink into a writable directory: its real place is checked."""
    evil = tmp_path / "shared"
    evil.mkdir(mode=0o777)
    os.chmod(evil, 0o777)
    real = evil / "helper.so"
    shutil.copy(helper_library(), real)
    link = tmp_path / "helper-link.so"
    link.symlink_to(real)
    sources = trust.agent_sources(str(link))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(Exception) as info:
        trust.check_and_copy(sources, str(dest), os.geteuid(), None, False)
    assert f"{evil} (owner root, mode drwxrwxrwx) is writable by group" in str(info.value)
    assert list(dest.iterdir()) == []  # nothing copied


PLANTED = """
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void) {
    int fd = open(MARKER, O_WRONLY | O_CREAT, 0644);
    if (fd >= 0) close(fd);
}
int memtrace_attach_spawn(void *page, unsigned long size, const char *code) { return 0; }
"""


def test_helper_swapped_after_the_check_is_not_what_loads(start_target, tmp_path,
                                                          monkeypatch):
    """Between the check and the injection the helper is replaced by a library that would
    leave a marker file: the target loads the checked copy, never the planted file."""
    from memtrace_core.attach import injector, session
    from memtrace_core.capture.copier import CaptureCopier

    src = tmp_path / "install"
    src.mkdir()
    helper = src / os.path.basename(helper_library())
    shutil.copy(helper_library(), helper)
    marker = tmp_path / "planted-ran"
    planted = tmp_path / "planted.so"
    (tmp_path / "planted.c").write_text(PLANTED)
    subprocess.run(["gcc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(planted),
                    str(tmp_path / "planted.c")], check=True)
    planted_bytes = planted.read_bytes()
    real_inject = injector.inject
    swaps: list[str] = []

    def swap_then_inject(pid, job, deadline):
        if not swaps:
            os.replace(planted, helper)  # the install's helper is now the planted library
        swaps.append(job["helper"])
        return real_inject(pid, job, deadline)

    monkeypatch.setattr(session, "helper_library", lambda: str(helper))
    monkeypatch.setattr(injector, "inject", swap_then_inject)
    target = start_target()
    target.wait_line("leak 1 ")
    attachment = session.Attachment(target.pid)
    out_fd = os.open(tmp_path / "x.mtrace", os.O_WRONLY | os.O_CREAT, 0o600)
    copier = CaptureCopier(attachment.begin(), out_fd)
    copier.start()
    try:
        attachment.wait_ready()
        assert helper.read_bytes() == planted_bytes
        assert attachment.detach()
        copier.eof.wait(timeout=10)
    finally:
        copier.stop()
        attachment.close()
        os.close(out_fd)
    assert swaps and all(channel.PREFIX in path for path in swaps)
    assert not marker.exists()
    assert read_capture(tmp_path / "x.mtrace").complete
    assert target.finish() == 0


def test_target_maps_the_copies_not_the_install(start_target, tmp_path):
    target = start_target()
    target.wait_line("leak 1 ")
    out = tmp_path / "x.mtrace"
    proc = memtrace("attach", str(target.pid), "-o", str(out), "--duration", "1")
    assert proc.returncode == 0, proc.stderr
    maps = Path(f"/proc/{target.pid}/maps").read_text()
    helper = os.path.basename(helper_library())
    tracer_so = [line.split(None, 5)[5] for line in maps.splitlines() if "_tracer" in line]
    assert tracer_so and all(channel.PREFIX in p for p in tracer_so), tracer_so
    assert str(REPO) not in maps and helper not in maps
    assert target.finish() == 0


def test_channel_of_a_killed_memtrace_is_removed_by_the_next_attach(start_target, tmp_path):
    target = start_target()
    target.wait_line("leak 1 ")
    tasks = target.base_tasks()
    cli = subprocess.Popen([*MEMTRACE, "attach", str(target.pid),
                            "-o", str(tmp_path / "a.mtrace")], env=cli_env(),
                           stderr=subprocess.PIPE, text=True)
    assert cli.stderr is not None
    assert "attached to process" in cli.stderr.readline()
    mine = channels_of(cli.pid)
    assert len(mine) == 1
    stale = mine[0]
    assert stat.S_IMODE(stale.stat().st_mode) == 0o700
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    assert stale.exists()
    # the tracer notices the closed FIFO and unhooks by itself: its writer thread ends
    assert wait_tasks(target, tasks, timeout=30) == tasks
    proc = memtrace("attach", str(target.pid), "-o", str(tmp_path / "b.mtrace"),
                    "--duration", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists()
    assert target.finish() == 0


@pytest.fixture
def other_user():
    """A user created for the test (root only), removed afterwards."""
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("setpriv") is None:
        pytest.skip("creating users needs root, useradd and setpriv")
    name = f"mtt{os.getpid() % 100000}"
    proc = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                           name], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot create a user here: {proc.stderr.strip()}")
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def _as_user(user: pwd.struct_passwd, code: str, cwd: Path) -> Target:
    if sys.version_info[:2] != (3, 11):  # CI runs these tests on 3.10, 3.12, 3.13 too
        pytest.skip(f"the other user's target is {DEBIAN_PYTHON} (readable by every user); "
                    f"this memtrace is built for Python {sys.version_info[0]}."
                    f"{sys.version_info[1]}")
    if not os.path.exists(DEBIAN_PYTHON):
        pytest.fail(f"{DEBIAN_PYTHON} is needed (install.sh installs python3.11)")
    os.chmod(cwd, 0o755)
    return Target(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                   "--clear-groups", DEBIAN_PYTHON, "-c", code],
                  {"PATH": os.environ["PATH"]}, cwd)


USER_TARGET = (
    "import os, time\nkeep = []\nprint('ready', flush=True)\n"
    "while not os.path.exists('stop'):\n    keep.append(bytearray(77777))\n"
    "    time.sleep(0.02)\n"
)


def test_root_attaches_to_another_users_process(other_user, tmp_path):
    target = _as_user(other_user, USER_TARGET, tmp_path)
    try:
        target.wait_line("ready")
        out = tmp_path / "x.mtrace"
        cli = subprocess.Popen([*MEMTRACE, "attach",
                                str(target.pid), "-o", str(out), "--duration", "1.5"],
                               env=cli_env(), stderr=subprocess.PIPE, text=True)
        assert cli.stderr is not None
        assert "attached to process" in cli.stderr.readline()
        dirs = channels_of(cli.pid)
        assert len(dirs) == 1
        st = dirs[0].stat()
        assert st.st_uid == other_user.pw_uid and stat.S_IMODE(st.st_mode) == 0o700
        assert cli.wait(timeout=30) == 0
        assert not dirs[0].exists()
        reader = read_capture(out)
        assert reader.complete
        assert [s for _, s, _, _ in reader.live_allocations() if s == 77778]
        (tmp_path / "stop").touch()
        assert target.proc.wait(timeout=10) == 0
    finally:
        target.kill()


def test_root_refuses_an_install_a_third_user_owns(other_user, tmp_path):
    install = copy_install(tmp_path / "inst")
    nobody = pwd.getpwnam("nobody")
    os.chown(install / "memtrace_core" / "tracer", nobody.pw_uid, -1)
    target = _as_user(other_user, USER_TARGET, tmp_path)
    try:
        target.wait_line("ready")
        proc = memtrace("attach", str(target.pid), "-o", str(tmp_path / "x.mtrace"),
                        env=env_for(install), cwd=install)
        one_line_error(proc, f"{install / 'memtrace_core' / 'tracer'} (owner nobody",
                       "belongs to another user")
        assert target.proc.poll() is None
    finally:
        target.kill()
