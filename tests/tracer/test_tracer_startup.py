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


# What `run --native` names its capture with at exit (memtrace_tui.cli._progress.name_capture)
# must not load either: it is paid by every native run. zstandard brings `typing` on Python
# < 3.12 (and `platform` everywhere), so `typing` is only checked where it does not.
EXIT_HEAVY = ("dataclasses", "inspect", "ast", "tokenize", "shutil", "tempfile", "bz2", "lzma",
              "random", "ctypes", "elftools", "textual", "rich", "numpy") + (
    ("typing",) if sys.version_info >= (3, 12) else ())
NAMING = """import json, sys
import memtrace_tui.cli.run  # loaded when the exit handler runs
before = set(sys.modules)
from memtrace_tui.cli._progress import name_capture
name_capture(sys.argv[1])
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_exit_naming_loads_no_heavy_module(tmp_path):
    """A second `run --native` of a program (its addresses in the persistent symbol cache)
    names its capture without the heavy modules, and without the DWARF reader."""
    from memtrace_core.reader import names_section
    from tests.cli import memtrace_env

    env = memtrace_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    program = "import json; json.dumps(list(range(1000)))"
    first = run_memtrace("run", "--native", "-o", str(tmp_path / "a.mtrace"), "-c", program,
                         env=env, text=True)
    assert first.returncode == 0, first.stderr
    capture = tmp_path / "b.mtrace"
    second = run_memtrace("run", "--native", "--no-names", "-o", str(capture), "-c", program,
                          env=env, text=True)
    assert second.returncode == 0, second.stderr
    assert names_section.read(str(capture)) is None

    import subprocess

    proc = subprocess.run([sys.executable, "-c", NAMING, str(capture)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "memtrace: named" in proc.stderr, proc.stderr
    embedded = names_section.read(str(capture))
    assert embedded is not None and embedded.warning is None and len(embedded) > 0
    loaded = set(json.loads(proc.stdout.splitlines()[-1]))
    assert "memtrace_core.symbols.embed" in loaded  # it did name here
    assert "memtrace_core.symbols.dwarf" not in loaded  # every answer came from the cache
    heavy = {m for m in loaded - subprocess_modules() if m.split(".")[0] in EXIT_HEAVY}
    assert not heavy


GC_PROBE = 'import gc; print(gc.isenabled(), *[s["collections"] for s in gc.get_stats()])\n'


def test_program_starts_with_the_collector_where_python_leaves_it(tmp_path):
    """memtrace's own start-up (imports, the parser, the tracer) makes thousands of objects;
    the collector is paused meanwhile and resumed just before the program, so the program's
    collections come when they would under python (collector.py): at its first line, at
    most two more collections have run than under `python -m` (memtrace's young garbage,
    collected before the program; the few objects memtrace makes before it pauses). They
    were four more on Python 3.11, half a cycle of the middle generation."""
    import subprocess

    (tmp_path / "gcprobe.py").write_text(GC_PROBE)
    plain = subprocess.run([sys.executable, "-m", "gcprobe"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout.split()
    for options in ([], ["--sample", "512KiB"]):
        proc = run_memtrace("run", *options, "-o", str(tmp_path / "c.mtrace"), "--force",
                            "-m", "gcprobe", cwd=tmp_path, text=True)
        assert proc.returncode == 0, proc.stderr
        traced = proc.stdout.split()
        assert traced[0] == plain[0] == "True"
        more = sum(map(int, traced[1:])) - sum(map(int, plain[1:]))
        assert 0 <= more <= 2, (plain, traced)


def test_other_commands_run_with_the_collector_on(tmp_path):
    """Only `run` keeps the collector paused until its program starts: any other command
    (and a `run` that stops before its program) has it on again before it works, in this
    process too (the entry point resumes it whatever happens)."""
    import gc

    from memtrace_tui.entry import main

    saved = sys.argv
    try:
        sys.argv = ["memtrace", "run", "-o", str(tmp_path / "missing" / "c.mtrace"), "-c",
                    "pass"]
        assert main() == 1
        assert gc.isenabled()
        sys.argv = ["memtrace", "stats", str(tmp_path / "none.mtrace")]
        assert main() == 1
        assert gc.isenabled()
    finally:
        sys.argv = saved


# The naming at the exit of `run --native` from the tracer's own tables (native_summary):
# it reads no capture, so it needs no zstandard either (the names are compressed by the
# capture writer's own zstd), nor what zstandard imports.
EXIT_NAMING_WITH_TABLES = """import ctypes, json, os, sys
from memtrace_core.tracer import _tracer
from memtrace_core.tracer.header import header_record
import memtrace_tui.cli.run  # loaded when the exit handler runs
path = sys.argv[1]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
_tracer.start(fd, True, False, header_record({"format": _tracer.FORMAT_VERSION,
                                              "native": True}), True)
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free(ctypes.c_void_p(libc.malloc(1 << 20)))
_tracer.stop(0)
os.close(fd)
known = _tracer.native_summary()
assert known is not None
before = set(sys.modules)
from memtrace_tui.cli._progress import name_capture
name_capture(path, known=known)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_exit_naming_from_the_tables_loads_no_zstandard(tmp_path):
    """Named from the tracer's tables (a second time: every address in the symbol cache), a
    capture's names are stored without the zstandard package, its `typing` or its
    `platform`, and read back as any names section."""
    import subprocess

    from memtrace_core.reader import names_section
    from tests.cli import memtrace_env

    capture = tmp_path / "t.mtrace"
    env = memtrace_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    for _run in range(2):  # the second with its addresses in the symbol cache
        proc = subprocess.run([sys.executable, "-c", EXIT_NAMING_WITH_TABLES, str(capture)],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert "memtrace: named" in proc.stderr, proc.stderr
    loaded = set(json.loads(proc.stdout.splitlines()[-1]))
    assert "memtrace_core.symbols.embed" in loaded  # it did name here
    plain = subprocess_modules()
    assert not {m for m in loaded - plain if m.split(".")[0] in ("zstandard", "typing",
                                                                  "platform")}
    embedded = names_section.read(str(capture))
    assert embedded is not None and embedded.warning is None and len(embedded) > 0
    assert any(f.function == "malloc" or "ctypes" in f.module
               for frames in embedded.frames.values() for f in frames)
