"""What `memtrace run` loads before the program's first line: its start-up is paid by every
traced run (issue 14: sampled mode's whole overhead is a few percent), so the run path
builds the `run` subcommand's parser alone and imports nothing of the reader, the model,
the symbolizer, the other subcommands or the heavier standard modules."""

from __future__ import annotations

import json
import sys

import pytest

from memtrace_tui.cli import build_parser, named_subcommand, parse, subcommand_names
from tests.cli import run_memtrace

PROGRAM = "import json, sys; print(json.dumps(sorted(sys.modules)))"
# Python's own start-up loads none of these; memtrace's run path must not either.
HEAVY = ("dataclasses", "typing", "inspect", "shutil", "textual", "rich", "elftools",
         "msgpack", "zstandard", "numpy")


@pytest.mark.parametrize("sample", [[], ["--sample", "512KiB"], ["--native"]])
def test_run_loads_only_the_run_path(tmp_path, sample):
    proc = run_memtrace("run", *sample, "-o", str(tmp_path / "c.mtrace"), "-c", PROGRAM,
                        text=True)
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout.splitlines()[-1]))
    ours = {m for m in loaded if m.startswith(("memtrace_core", "memtrace_tui"))}
    assert "memtrace_core.tracer._tracer" in ours  # the program ran traced
    others = {f"memtrace_tui.cli.{name}" for name in subcommand_names()} - {
        "memtrace_tui.cli.run"}
    assert not ours & others
    assert not {m for m in ours if m.startswith(("memtrace_core.model", "memtrace_core.reader",
                                                  "memtrace_core.symbols"))}
    plain = subprocess_modules()
    assert not {m for m in loaded - plain if m.split(".")[0] in HEAVY}


def subprocess_modules() -> set[str]:
    """The modules of `python -c PROGRAM` itself (what site and the venv load)."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                         check=True).stdout
    return set(json.loads(out))


def test_named_subcommand():
    assert named_subcommand(["run", "-o", "x", "prog.py"]) == "run"
    assert named_subcommand(["--version"]) is None
    assert named_subcommand(["bogus"]) is None
    assert named_subcommand(["_progress"]) is None  # a private module is no subcommand
    assert named_subcommand([]) is None


def test_one_subcommand_parser_parses_as_the_whole():
    """The `run` parser built alone takes a command line as the whole parser does."""
    argv = ["run", "--sample", "1MiB", "--native", "-o", "out.mtrace", "--force", "prog.py",
            "--native", "x"]
    alone = parse(build_parser("run"), argv)
    whole = parse(build_parser(), argv)
    assert {k: v for k, v in vars(alone).items() if k != "program"} == {
        k: v for k, v in vars(whole).items() if k != "program"}
    assert alone.program == whole.program
    assert alone.sample == 1 << 20 and alone.native and alone.program.args == ["--native", "x"]
