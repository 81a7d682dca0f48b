"""`memtrace live PROGRAM` takes the program's command line as python does (as `run` does,
see tests/tracer/test_tracer_program_args.py): in a real terminal (tmux), the program's
output log and exit status are compared with plain python's."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.cli import MEMTRACE

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is required")

SHOW = """\
import sys
print("argv", sys.argv, "path0", sys.path[0], list(globals()))
sys.exit(len(sys.argv))
"""

CASES = {
    "module_own_option": ["-m", "json.tool", "--sort-keys", "data.json"],
    "code_help": ["-c", "import sys; print(sys.argv); sys.exit(3)", "--help", "-o", "x"],
    "script_after_dashes": ["--", "show.py", "--help", "--native"],
    "syntax_error": ["bad.py"],
}


def _live_in_tmux(cwd: Path, env: dict[str, str], args: list[str]) -> tuple[str, int]:
    """Run `memtrace live ARGS` in a detached tmux session; quit once the program has
    exited; return the screen at exit and memtrace's exit status."""
    name = f"mt-args-{uuid.uuid4().hex[:8]}"
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()
                       if k in ("PYTHONPATH", "PATH", "HOME"))
    command = " ".join(shlex.quote(a) for a in (*MEMTRACE, "live",
                                                *args))
    script = (f"cd {shlex.quote(str(cwd))} && env -u COLUMNS -u LINES {exports} "
              f"TERM=xterm-256color {command}; echo EXIT=$?; sleep 60")
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40", script],
                   check=True)
    try:
        def screen() -> str:
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", name],
                                  capture_output=True, text=True, check=True).stdout

        deadline = time.monotonic() + 60
        seen = ""
        while time.monotonic() < deadline:
            text = screen()
            if "EXIT=" in text:
                break
            if re.search(r"exited with status \d+", text):
                seen = text
                subprocess.run(["tmux", "send-keys", "-t", name, "q"], check=True)
            time.sleep(0.2)
        text = screen()
        found = re.search(r"EXIT=(\d+)", text)
        assert found, f"memtrace live never finished; screen:\n{text}"
        return seen or text, int(found.group(1))
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "show.py").write_text(SHOW)
    (tmp_path / "bad.py").write_text("x = (\n")
    (tmp_path / "data.json").write_text('[1, {"b": 2, "a": 1}]\n')
    return tmp_path


@pytest.mark.parametrize("case", sorted(CASES))
def test_live_runs_the_program_as_python_would(workdir, mt, case):
    args = CASES[case]
    log = workdir / "program.log"
    screen, status = _live_in_tmux(workdir, mt.env, ["--log", str(log), *args])
    plain = subprocess.run([mt.python, *args], cwd=workdir, env=mt.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert f"exited with status {plain.returncode}" in screen
    assert status == plain.returncode
    assert log.read_bytes() == plain.stdout


def test_live_missing_script_fails_as_python(workdir, mt):
    """No UI for a program that cannot start: python's message and exit status 2."""
    screen, status = _live_in_tmux(workdir, mt.env, ["missing.py"])
    plain = subprocess.run([mt.python, "missing.py"], cwd=workdir, capture_output=True,
                           text=True)
    assert status == plain.returncode == 2
    message = plain.stderr.strip().removeprefix(f"{mt.python}: ")
    # the terminal wraps the line where it likes (at a space or not): compare without
    # whitespace
    assert "".join(f"memtrace: error: {message}".split()) in "".join(screen.split())
