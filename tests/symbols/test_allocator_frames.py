"""An allocator inside an installed extension (polars' jemalloc, Arrow's mimalloc) is called
directly, so what the tracer records is the mapping it makes for its pool, at the end of a
chain of its own functions. Those frames at a stack's innermost end are hidden by default:
the allocation shows at the extension's function that asked for memory, as the
interpreter's glue is hidden (`--show-internal` keeps them). A user's own library never
loses a frame."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.symbols import hybrid_stack
from memtrace_core.symbols.hybrid import F_ALLOC, frame_flags, is_allocator_function
from tests.cli import memtrace_env, run_memtrace

MiB = 1 << 20
INSTALLED = "/usr/lib/python3/dist-packages/ext/_ext.so"
USER = "/home/me/project/build/libmine.so"


def _native(name: str, module: str = INSTALLED) -> Frame:
    return Frame(name, "", 0, FrameKind.NATIVE, module=module)


def _path(names_innermost_first: list[str], module: str = INSTALLED,
          show_internal: bool = False) -> list[str]:
    frames = {0x1000 + 16 * i: [_native(n, module)] for i, n in
              enumerate(names_innermost_first)}
    out = hybrid_stack([], [ip + 1 for ip in frames], frames.__getitem__, show_internal)
    return [f.function for f in reversed(out)]  # innermost first


def test_allocator_names():
    for name in ("_rjem_je_pages_map", "_rjem_malloc", "je_extent_alloc", "_mi_os_alloc",
                 "mi_malloc_aligned", "tc_malloc", "tcmalloc::SystemAlloc", "__rust_alloc",
                 "__rdl_alloc_zeroed", "__rg_realloc", "tikv_jemallocator::layout_to_flags",
                 "<tikv_jemallocator::Jemalloc as core::alloc::global::GlobalAlloc>::alloc",
                 "<mimalloc::MiMalloc as core::alloc::global::GlobalAlloc>::realloc"):
        assert is_allocator_function(name), name
    for name in ("malloc", "PyMem_Malloc", "default_malloc", "mimic_things", "jemalloc_user",
                 "<polars_arrow::array::binview::mutable::MutableBinaryViewArray<str>>::"
                 "with_capacity", "alloc::raw_vec::finish_grow"):
        assert not is_allocator_function(name), name
    assert frame_flags(_native("_rjem_je_pages_map")) & F_ALLOC
    assert not frame_flags(_native("_rjem_je_pages_map", USER)) & F_ALLOC


def test_innermost_allocator_frames_are_hidden():
    chain = ["_rjem_je_pages_map", "_rjem_je_extent_alloc_mmap", "ecache_alloc_grow",
             "pac_alloc_real", "pac_alloc_impl", "_rjem_je_pa_alloc", "_rjem_malloc",
             "with_capacity", "new_str", "trampoline"]
    assert _path(chain) == ["with_capacity", "new_str", "trampoline"]
    assert _path(chain, show_internal=True) == chain
    # in a user's library nothing goes
    assert _path(chain, module=USER) == chain
    # unnamed helpers: up to three before or between named frames, not four
    assert _path(["os_pages_map", "_rjem_malloc", "ext_fn"]) == ["ext_fn"]
    assert _path(["ext_a", "ext_b", "ext_c", "ext_d", "_rjem_malloc", "caller"]) == [
        "ext_a", "ext_b", "ext_c", "ext_d", "_rjem_malloc", "caller"]
    assert _path(["_rjem_a", "h1", "h2", "h3", "_rjem_b", "ext_fn"]) == ["ext_fn"]
    assert _path(["_rjem_a", "h1", "h2", "h3", "h4", "_rjem_b", "ext_fn"]) == [
        "h1", "h2", "h3", "h4", "_rjem_b", "ext_fn"]
    # a stack of an allocator's frames alone (its own background thread) keeps them
    assert _path(["_rjem_je_pages_map", "_rjem_je_background_thread_entry"]) == [
        "_rjem_je_pages_map", "_rjem_je_background_thread_entry"]


PROGRAM = """\
import ctypes, sys
kept = []
for path in sys.argv[1:]:
    lib = ctypes.CDLL(path)
    lib.column_with_capacity.restype = ctypes.c_void_p
    lib.column_with_capacity.argtypes = [ctypes.c_size_t]
    kept.append(lib.column_with_capacity(4 << 20))
print("ok", all(kept))
"""


@pytest.fixture(scope="module")
def arena_libs(tmp_path_factory) -> tuple[Path, Path]:
    """The allocator-carrying library, installed (under site-packages) and as a user's own."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    d = tmp_path_factory.mktemp("arena")
    source = Path(__file__).resolve().parents[1] / "cfixtures" / "mtarena.c"
    out = []
    for where in ("venv/lib/site-packages/ext", "project"):
        lib = d / where / "libmtarena.so"
        lib.parent.mkdir(parents=True)
        proc = subprocess.run(["gcc", "-g", "-O2", "-fPIC", "-shared", "-Wall", str(source),
                               "-o", str(lib)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        out.append(lib)
    return out[0], out[1]


def _leaks(capture: Path, env: dict[str, str], *options: str) -> list[dict]:
    table = run_memtrace("table", "--leaks", "--json", "-n", "0", *options, str(capture),
                         env=env, text=True)
    assert table.returncode == 0, table.stderr
    return json.loads(table.stdout)["rows"]


def test_a_traced_extension_allocator_shows_at_its_caller(arena_libs, tmp_path):
    installed, user = arena_libs
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    capture = tmp_path / "arena.mtrace"
    env = memtrace_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    run = run_memtrace("run", "--native", "-o", str(capture), str(script), str(installed),
                       str(user), env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"ok True\n"

    def own(rows, module):
        return {r["function"]: (r["own_bytes"], r["own_count"]) for r in rows
                if r["module"] == str(module) and r["own_bytes"]}

    rows = _leaks(capture, env)
    assert own(rows, installed) == {"column_with_capacity": (4 * MiB, 1)}
    assert own(rows, user) == {"_rjem_je_pages_map": (4 * MiB, 1)}
    assert own(_leaks(capture, env, "--show-internal"), installed) == {
        "_rjem_je_pages_map": (4 * MiB, 1)}
