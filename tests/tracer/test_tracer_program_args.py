"""The program's command line is python's: `memtrace run [options] PROGRAM` behaves as
`python PROGRAM` for every form of PROGRAM (script, -m module, -c code, -, --, a directory,
a zip file), arguments that look like options included. Each case runs under plain python
and under memtrace and compares stdout, stderr and the exit status."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SHOW = """\
import sys
print("argv", sys.argv)
print("path0", sys.path[0])
print("globals", list(globals()))
print("builtins", type(__builtins__).__name__)
print("loader", getattr(__loader__, "__name__", type(__loader__).__name__))
print("file", globals().get("__file__"), globals().get("__cached__", "-"))
print("spec", __spec__ and (__spec__.name, __spec__.origin, type(__spec__.loader).__name__))
"""

RAISES = """\
def inner():
    raise KeyError("inner")


inner()
"""

FILES = {
    "show.py": SHOW,
    "-dash.py": SHOW,
    "showmod.py": SHOW,
    "raises.py": RAISES,
    "raisesmod.py": RAISES,
    "badsyntax.py": "x = (\n",
    "pkg/__init__.py": "",
    "pkg/__main__.py": SHOW,
    "pkg/sub.py": SHOW,
    "nomain/__init__.py": "",
    "app/__main__.py": SHOW,
    "emptydir/.keep": "",
    "data.json": '[1, {"b": 2, "a": 1}]\n',
}

CODE = "import sys; print(sys.argv, repr(sys.path[0]), list(globals()), type(__builtins__))"

# name: (program command line, stdin)
CASES: dict[str, tuple[list[str], bytes]] = {
    "module_own_option": (["-m", "json.tool", "--sort-keys", "data.json"], b""),
    "module_help": (["-m", "json.tool", "--help"], b""),
    "module_joined": (["-mjson.tool", "--sort-keys", "data.json"], b""),
    "module_show": (["-m", "showmod", "-o", "x", "--native", "--", "-c"], b""),
    "package_main": (["-m", "pkg", "--help"], b""),
    "submodule": (["-m", "pkg.sub", "a"], b""),
    "missing_submodule": (["-m", "pkg.nosuch"], b""),
    "package_without_main": (["-m", "nomain"], b""),
    "module_raises": (["-m", "raisesmod"], b""),
    "module_syntax_error": (["-m", "badsyntax"], b""),
    "script_options": (["show.py", "--help", "-o", "x", "--native", "-m", "y"], b""),
    "dashes": (["--", "show.py", "--", "--help"], b""),
    "dash_script": (["--", "-dash.py", "q"], b""),
    "script_raises": (["raises.py"], b""),
    "script_syntax_error": (["badsyntax.py"], b""),
    "code": (["-c", CODE, "--help", "-m", "x"], b""),
    "code_joined": (["-cprint('joined')"], b""),
    "code_exit": (["-c", "import sys; print('out'); sys.exit(5)"], b""),
    "code_raises": (["-c", "def f():\n    return 1 / 0\nf()"], b""),
    "code_syntax_error": (["-c", "x = ("], b""),
    "stdin_program": (["-", "arg", "--help"], SHOW.encode() + b"print(1 / 0)\n"),
    "directory": (["app", "d"], b""),
    "zip": (["app.zip", "z"], b""),
    "missing_script": (["missing.py"], b""),
    "missing_in_directory": (["show.py/x.py"], b""),
    "directory_without_main": (["emptydir"], b""),
    "missing_module": (["-m", "no_such_module_xyz", "--help"], b""),
}

# cases that fail before the program runs: python's message, no capture written
NOT_STARTED = {"missing_script", "missing_in_directory", "directory_without_main",
               "missing_module"}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    with zipfile.ZipFile(tmp_path / "app.zip", "w") as archive:
        archive.writestr("__main__.py", SHOW)
    return tmp_path


def _error_prefix_normalised(stderr: bytes, python: str) -> bytes:
    """Python starts its own error lines with its path, memtrace with `memtrace: error:`."""
    text = stderr.replace(python.encode() + b": ", b"<prog>: ")
    return re.sub(rb"^memtrace: error: ", b"<prog>: ", text, flags=re.M)


@pytest.mark.parametrize("case", sorted(CASES))
def test_program_command_line_as_python(workdir, mt, case):
    command_line, stdin = CASES[case]
    untraced = mt.plain(*command_line, cwd=workdir, input=stdin)
    capture = workdir / "out.mtrace"
    traced = mt.cli("run", "-o", str(capture), *command_line, cwd=workdir, input=stdin)
    assert traced.stdout == untraced.stdout
    assert _error_prefix_normalised(traced.stderr, mt.python) == _error_prefix_normalised(
        untraced.stderr, mt.python
    )
    assert traced.returncode == untraced.returncode
    assert b"memtrace_core" not in traced.stderr
    if case in NOT_STARTED:
        assert not capture.exists()
    else:
        assert mt.stats(capture)["complete"] is True


def test_cases_are_what_they_claim(workdir, mt):
    """The comparisons above are worth something only if python really does this."""
    status = {case: mt.plain(*CASES[case][0], cwd=workdir, input=CASES[case][1]).returncode
              for case in CASES}
    assert status["missing_script"] == 2 and status["missing_in_directory"] == 2
    assert status["missing_module"] == 1 and status["directory_without_main"] == 1
    assert status["code_exit"] == 5 and status["script_syntax_error"] == 1
    assert status["module_own_option"] == 0 and status["module_help"] == 0
    syntax = mt.plain("badsyntax.py", cwd=workdir)
    assert b"Traceback" not in syntax.stderr and b"SyntaxError" in syntax.stderr
    helped = mt.plain("-m", "json.tool", "--help", cwd=workdir)
    assert b"json.tool" in helped.stdout and b"memtrace" not in helped.stdout


@pytest.mark.parametrize(
    "options",
    [["--output", "{out}"], ["--output={out}"], ["--out", "{out}"], ["-o{out}"],
     ["-fo", "{out}"], ["--force", "-o", "{out}", "--native"]],
    ids=["long", "long_equals", "abbreviated", "short_joined", "cluster", "several"],
)
def test_memtrace_options_before_the_program(workdir, mt, options):
    out = workdir / "opts.mtrace"
    args = [o.format(out=out) for o in options]
    traced = mt.cli("run", *args, "-m", "json.tool", "--sort-keys", "data.json", cwd=workdir)
    untraced = mt.plain("-m", "json.tool", "--sort-keys", "data.json", cwd=workdir)
    assert traced.returncode == 0, traced.stderr.decode()
    assert traced.stdout == untraced.stdout
    assert mt.stats(out)["complete"] is True


def test_code_program_is_traced_and_named(workdir, mt):
    """-c code's allocations are traced at <string> lines, and the default capture name
    says it was -c."""
    code = "import mtext\ndef leak():\n    mtext.leak_pattern()\nleak()\n"
    traced = mt.cli("run", "-c", code, cwd=workdir)
    assert traced.returncode == 0, traced.stderr.decode()
    captures = list(workdir.glob("memtrace-c.*.mtrace"))
    assert len(captures) == 1 and captures[0].name.encode() in traced.stderr
    stats = mt.stats(captures[0])
    leaks = [loc for loc in stats["top_locations"]
             if loc["function"] == "leak" and loc["file"] == "<string>" and loc["line"] == 3]
    assert leaks, stats["top_locations"]


def test_usage_errors(workdir, mt):
    none = mt.cli("run", "-o", "x.mtrace", cwd=workdir)
    assert none.returncode == 2 and len(none.stderr.decode().splitlines()) == 1
    dangling = mt.cli("run", "-o", "x.mtrace", "-m", cwd=workdir)
    python = mt.plain("-m", cwd=workdir)
    assert dangling.returncode == python.returncode == 2
    assert dangling.stderr.decode().splitlines() == [
        "memtrace: error: " + python.stderr.decode().splitlines()[0]
    ]
    unknown = mt.cli("run", "--bogus", "show.py", cwd=workdir)
    assert unknown.returncode == 2 and b"--bogus" in unknown.stderr
    assert b"Traceback" not in unknown.stderr
    assert not (workdir / "x.mtrace").exists()


def test_console_script_finds_modules_in_the_current_directory(workdir, mt):
    """`memtrace` (the console script, whose sys.path[0] is its bin directory) runs
    `-m module` from the current directory, as `python -m` does."""
    script = Path(sys.executable).parent / "memtrace"
    if not script.exists():
        pytest.skip("memtrace is not installed next to this python")
    out = workdir / "console.mtrace"
    traced = subprocess.run([str(script), "run", "-o", str(out), "-m", "showmod", "a"],
                            cwd=workdir, env=mt.env, capture_output=True)
    untraced = mt.plain("-m", "showmod", "a", cwd=workdir)
    assert traced.returncode == 0, traced.stderr.decode()
    assert traced.stdout == untraced.stdout


LEAKS = "import mtext\n\n\ndef leak():\n    mtext.leak_pattern()\n\n\nleak()\n"


@pytest.mark.parametrize("form", ["script", "module", "code", "stdin", "directory"])
def test_only_the_programs_allocations_are_recorded(workdir, mt, form):
    """memtrace's own work (finding and reading the program, loading runpy) happens before
    tracing: every allocation still alive at the end was made by the program's own code
    (the module and function objects it created, and exactly what mt_leaf leaked) or by
    runpy running it, as under python, whatever the form of its command line."""
    from memtrace_core.reader import read_capture

    (workdir / "leaks.py").write_text(LEAKS)
    (workdir / "leakdir").mkdir()
    (workdir / "leakdir" / "__main__.py").write_text(LEAKS)
    command_line, program_file = {
        "script": (["leaks.py"], str(workdir / "leaks.py")),
        "module": (["-m", "leaks"], str(workdir / "leaks.py")),
        "code": (["-c", LEAKS], "<string>"),
        "stdin": (["-"], "<stdin>"),
        "directory": (["leakdir"], str(workdir / "leakdir" / "__main__.py")),
    }[form]
    out = workdir / "leaks.mtrace"
    traced = mt.cli("run", "-o", str(out), *command_line, cwd=workdir,
                    input=LEAKS.encode() if form == "stdin" else None)
    assert traced.returncode == 0, traced.stderr.decode()
    stats = mt.stats(out)
    leaked = [5000011 + 1013 * i for i in range(3)]  # mt_leaf's blocks (tracer_support.py)
    at_leak = [(loc["leaked_bytes"], loc["leaked_count"]) for loc in stats["top_locations"]
               if (loc["function"], loc["file"], loc["line"]) == ("leak", program_file, 5)]
    assert at_leak == [(sum(leaked), 3)]
    reader = read_capture(out)
    for _address, size, sid, _allocator in reader.live_allocations():
        files = [reader.codes[code][1] for code, _line, _entry in
                 reader.py_stack(reader.stack_key(sid)[0])]
        by_runpy = form in ("module", "directory") and any(
            f.endswith(("runpy.py", "<frozen runpy>")) for f in files)
        assert program_file in files or by_runpy, (size, files)
        assert not any("memtrace_core" in f for f in files), (size, files)


# a program big enough that compiling it needs fresh arenas and large blocks
BIG_PROGRAM = LEAKS + "".join(
    f"\n\ndef f{i}(a, b={i}):\n    return [a, b, {'x' * 300!r}, {i} * a]\n" for i in range(250)
)


@pytest.mark.parametrize("form", ["script", "code", "stdin"])
def test_compiling_the_program_is_not_recorded(workdir, mt, form):
    """Python compiles a script (or -c code, or stdin) before its first line runs: memtrace
    does too, before tracing starts, so no allocation of the capture (freed or not) comes
    from the compiler without a frame of the program above it: `stats` never shows a
    `<native>` location of memtrace's own set-up, and --native stacks hold no compile call
    made by the runner. Everything recorded has a frame of the program's file."""
    from memtrace_core.reader import read_capture

    (workdir / "big.py").write_text(BIG_PROGRAM)
    command_line, program_file = {
        "script": (["big.py"], str(workdir / "big.py")),
        "code": (["-c", BIG_PROGRAM], "<string>"),
        "stdin": (["-"], "<stdin>"),
    }[form]
    out = workdir / "big.mtrace"
    traced = mt.cli("run", "--native", "-o", str(out), *command_line, cwd=workdir,
                    input=BIG_PROGRAM.encode() if form == "stdin" else None)
    assert traced.returncode == 0, traced.stderr.decode()
    stats = mt.stats(out)
    assert "<native>" not in {loc["function"] for loc in stats["top_locations"]}, stats
    reader = read_capture(out)
    assert reader.total_allocations >= 3
    for pynode, _native, _thread in (reader.stack_key(sid) for sid in range(reader.n_stacks)):
        files = [reader.codes[code][1] for code, _line, _entry in reader.py_stack(pynode)]
        assert program_file in files, files
    named = mt.cli("tree", "--json", "--threshold", "0", "--show-internal", str(out),
                   cwd=workdir)
    assert named.returncode == 0, named.stderr.decode()
    assert b"builtin_compile" not in named.stdout
    assert b"Py_CompileStringObject" not in named.stdout
    assert b"PyEval_EvalCode" in named.stdout  # the native frames are there, named
