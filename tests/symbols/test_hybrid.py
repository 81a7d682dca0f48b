"""hybrid_stack on a real `memtrace run --native` capture and on frames resolved from
real libpython addresses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.symbols import ModuleMap, Symbolizer, hybrid_stack
from memtrace_core.symbols.elf import read_build_id
from memtrace_core.symbols.symbolizer import _Module
from tests.cli import run_memtrace
from tests.symbols.symbols_support import source_line

PROG = '''\
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.outer_entry.restype = ctypes.c_void_p
KEEP = []
def work():
    for _ in range(3):
        KEEP.append(lib.outer_entry(1000000))  # ALLOC
def main():
    work()  # CALL_WORK
main()  # CALL_MAIN
'''


@pytest.fixture(scope="module")
def capture(libs, tmp_path_factory):
    d = tmp_path_factory.mktemp("hybrid")
    prog = d / "prog.py"
    prog.write_text(PROG)
    cap = d / "cap.mtrace"
    r = run_memtrace("run", "--native", "-f", "-o", str(cap), str(prog), str(libs["dwarf5"]),
                     timeout=120, text=True)
    if r.returncode != 0:
        pytest.skip(f"memtrace run --native failed: {r.stderr[-300:]}")
    from memtrace_core.reader import read_capture

    return read_capture(cap), prog


HELPER_BLOCK = 2 * 1000001  # helper_alloc mallocs 2 * (n + 1) bytes, three times


def _stacks_of(reader, block: int, total: int):
    """(py_frames, native ips) of the stacks that allocated only BLOCK-sized blocks, TOTAL
    bytes in all. Several stacks: the interpreter may call from another return address once
    it has specialised the call instruction (3.13 does after the first call)."""
    found, seen = [], 0
    for sid in range(reader.n_stacks):
        nbytes, count = reader.stack_counters(sid)[:2]
        if count and nbytes == block * count:
            py, nat, _ = reader.stack_key(sid)
            pys = [(Frame(reader.codes[c][0], reader.codes[c][1], line, FrameKind.PYTHON), e)
                   for c, line, e in reader.py_stack(py)]
            found.append((pys, reader.native_stack(nat)))
            seen += nbytes
    assert seen == total, f"{seen} bytes of {block}-byte blocks, not {total}"
    return found


def test_real_capture_merge(capture, libs):
    reader, prog = capture
    mm = ModuleMap(reader.maps)
    sym = Symbolizer(persistent=False)

    def resolve_ip(ip):
        hit = mm.lookup(ip)
        return sym.resolve(*hit) if hit else [Frame(hex(ip), "", 0, FrameKind.UNRESOLVED)]

    src, lib = str(libs["src"]), str(libs["dwarf5"])
    for pys, ips in _stacks_of(reader, HELPER_BLOCK, 3 * HELPER_BLOCK):
        _check_merge(pys, ips, resolve_ip, prog, src, lib, libs)


def _check_merge(pys, ips, resolve_ip, prog, src, lib, libs):
    stack = hybrid_stack(pys, ips, resolve_ip)
    assert stack[:3] == [
        Frame("<module>", str(prog), source_line(prog, "CALL_MAIN"), FrameKind.PYTHON),
        Frame("main", str(prog), source_line(prog, "CALL_WORK"), FrameKind.PYTHON),
        Frame("work", str(prog), source_line(prog, "ALLOC"), FrameKind.PYTHON),
    ]
    # outer_entry tail-calls middle, so it is not on the stack
    assert stack[-3:] == [
        Frame("middle", src, source_line(libs["src"], "MIDDLE_CALL"), FrameKind.NATIVE,
              module=lib),
        Frame("leaf_alloc", src, source_line(libs["src"], "LEAF_CALL"), FrameKind.NATIVE,
              module=lib),
        Frame("helper_alloc", src, source_line(libs["src"], "HELPER_MALLOC"),
              FrameKind.INLINE, module=lib),
    ]
    between = stack[3:-3]
    # the interpreter's call glue is hidden: the first native frame is ctypes' own
    assert between[0].function == "PyCFuncPtr_call"
    assert any(f.function == "_ctypes_callproc" for f in between)
    assert not any(f.function == "_PyEval_EvalFrameDefault" for f in stack)
    full = hybrid_stack(pys, ips, resolve_ip, show_internal=True)
    # internal view keeps process start-up and the runner's eval loops outward
    assert len(full) > len(stack)
    assert full[-3:] == stack[-3:]
    i = full.index(stack[0])
    j = full.index(stack[2])
    if sys.version_info >= (3, 11):  # Python-to-Python calls stay inside one eval loop
        assert full[i:j + 1] == stack[:3]
    else:  # 3.10: each call goes through C (_PyEval_Vector...), shown as interpreter glue
        assert [f for f in full[i:j + 1] if f.kind is FrameKind.PYTHON] == stack[:3]
        glue = [f for f in full[i:j + 1] if f.kind is not FrameKind.PYTHON]
        assert "_PyEval_Vector" in {f.function for f in glue}
        assert all("libpython" in f.module for f in glue)
    assert any(f.function == "Py_RunMain" for f in full[:i])
    assert full[j + 1].function == "_PyObject_MakeTpCall"


@pytest.fixture(scope="module")
def py_lib(libpython):
    """resolve_ip over real libpython addresses: 'name+off' -> return address."""
    mod = _Module(str(libpython), None, 0)
    sym = Symbolizer(persistent=False)
    bid = read_build_id(libpython)

    def addr(name: str, off: int = 40) -> int:
        (a,) = {a for a, _, n in mod.symtab.syms if n == name}
        return a + off + 1  # a return address: resolve_ip gets it minus one

    def resolve_ip(ip: int):
        return sym.resolve(str(libpython), bid, ip)

    return addr, resolve_ip


def _names(frames: list[Frame]) -> list[str]:
    """Function names without inlined frames (the +offsets may land in inlined code)."""
    return [f.function for f in frames if f.kind is not FrameKind.INLINE]


def _py(name: str, entry: bool) -> tuple[Frame, bool]:
    return Frame(name, f"/app/{name}.py", 1, FrameKind.PYTHON), entry


def test_groups_replace_eval_loops(py_lib):
    addr, resolve_ip = py_lib
    ev = addr("_PyEval_EvalFrameDefault", 200)
    ips = [addr("PyList_Append"), addr("_PyObject_MakeTpCall"), ev,
           addr("_PyObject_Call"), ev, addr("PyEval_EvalCode"), addr("Py_RunMain")]
    py = [_py("inner", False), _py("mid", True), _py("outer", False), _py("top", True)]
    names = _names(hybrid_stack(py, ips, resolve_ip))
    # the interpreter allocates itself here: its frames below Python stay
    assert names == ["top", "outer", "mid", "inner", "_PyObject_MakeTpCall", "PyList_Append"]
    full = _names(hybrid_stack(py, ips, resolve_ip, show_internal=True))
    assert full[:2] == ["Py_RunMain", "PyEval_EvalCode"]
    assert full[2:4] == ["top", "outer"] and "_PyObject_Call" in full[4:-4]
    assert full[-4:] == ["mid", "inner", "_PyObject_MakeTpCall", "PyList_Append"]


def test_unwinding_stopped_early_falls_back_to_python(py_lib):
    addr, resolve_ip = py_lib
    ev = addr("_PyEval_EvalFrameDefault", 200)
    ips = [addr("PyList_Append"), ev]  # the outer eval loop was never reached
    py = [_py("inner", True), _py("outer", True)]
    got = _names(hybrid_stack(py, ips, resolve_ip))
    assert got == ["outer", "inner", "PyList_Append"]


def test_no_eval_loop_resolved_gives_python_only(py_lib):
    addr, resolve_ip = py_lib
    py = [_py("inner", True)]
    got = hybrid_stack(py, [addr("PyList_Append")], resolve_ip)
    assert [f.function for f in got] == ["inner"]


def test_no_python_frames_keeps_native_stack(py_lib):
    addr, resolve_ip = py_lib
    ips = [addr("PyList_Append"), addr("Py_RunMain")]
    got = _names(hybrid_stack([], ips, resolve_ip))
    assert got == ["Py_RunMain", "PyList_Append"]


def test_memtrace_frames_hidden(py_lib):
    addr, resolve_ip = py_lib
    own = Frame("tracer_hook", "", 0, FrameKind.NATIVE, module="/x/memtrace_core/tracer/_t.so")

    def resolve(ip):
        return [own] if ip == 0x10 - 1 else resolve_ip(ip)

    ev = addr("_PyEval_EvalFrameDefault", 200)
    got = hybrid_stack([_py("f", True)], [0x10, addr("PyList_Append"), ev], resolve)
    assert own not in got
    assert own in hybrid_stack([_py("f", True)], [0x10, addr("PyList_Append"), ev], resolve,
                               show_internal=True)


def test_namer_at_once_and_through_worker(capture, tmp_path):
    from memtrace_core.symbols.hybrid import A_EVAL, A_PENDING
    from memtrace_core.symbols.names import Namer

    reader, prog = capture
    _pys, ips = _stacks_of(reader, HELPER_BLOCK, 3 * HELPER_BLOCK)[0]
    now = Namer(reader, mode="sync", cache_dir=tmp_path / "a").classify(ips)
    assert not any(flags & A_PENDING for flags, _ in now)
    assert now[-1][1][-1].function in ("_start", "clone3", "start_thread")  # complete stack
    later = Namer(reader, mode="async", cache_dir=tmp_path / "b")
    try:
        first = later.classify(ips)
        # the eval loops are known at once (symbol table), the names are not
        assert [f & A_EVAL for f, _ in first] == [f & A_EVAL for f, _ in now]
        assert sum(1 for f, _ in now if f & A_EVAL) >= 3
        pending = [ip for ip, (f, _) in zip(ips, first, strict=True) if f & A_PENDING]
        assert pending and later.pending() == len(set(pending))
        frames = first[0][1]
        assert frames[0].kind is FrameKind.UNRESOLVED and "+0x" in frames[0].function
        later.wait(timeout=60)
        got = later.poll()
        assert later.pending() == 0
        assert {ip: got[ip] for ip in pending} == {ip: now[i][1] for i, ip in enumerate(ips)
                                                   if ip in got}
    finally:
        later.close()
    assert Namer(reader, mode="off").classify([0x11])[0][1] == [
        Frame("0x10", "", 0, FrameKind.NO_SYMBOL)]


def test_provisional_frames_keep_the_python_stack_in_place(capture, tmp_path):
    from memtrace_core.model.build import call_tree

    reader, prog = capture
    tree = call_tree(reader, names="off", cache_dir=tmp_path)  # names never arrive
    tree.rebuild()
    node = tree.find("<module>", "main", "work")
    assert node is not None and node.total[0] >= 3 * HELPER_BLOCK  # work()'s allocations
    below = [c.frame for c in node.children.values()]
    assert below and all(f.kind is FrameKind.UNRESOLVED for f in below)


def test_module_map_history_keeps_unloaded_objects():
    old = [["/lib/gone.so", 0x7F0000000000, "aa" * 20, [[0, 0x1000, 5, 0]]]]
    new = [["/lib/new.so", 0x7F1000000000, "bb" * 20, [[0, 0x1000, 5, 0]]]]
    mm = ModuleMap.from_history([old, new])
    assert mm.lookup(0x7F0000000010) == ("/lib/gone.so", "aa" * 20, 0x10)
    assert mm.lookup(0x7F1000000010) == ("/lib/new.so", "bb" * 20, 0x10)
    # an address reused by a later object resolves to the later one
    mm2 = ModuleMap.from_history([old, [["/lib/re.so", 0x7F0000000000, "cc" * 20,
                                          [[0, 0x1000, 5, 0]]]]])
    assert mm2.lookup(0x7F0000000010)[0] == "/lib/re.so"


def test_interpreter_glue_before_an_extension_is_hidden(py_lib, libs):
    addr, resolve_ip = py_lib
    lib = libs["dwarf5"]
    leaf = {a for a, _, n in _Module(str(lib), None, 0).symtab.syms if n == "middle"}.pop()
    ext = Symbolizer(persistent=False).resolve(str(lib), read_build_id(lib), leaf + 4)

    def resolve(ip):
        return ext if ip == 0x20 - 1 else resolve_ip(ip)

    ev = addr("_PyEval_EvalFrameDefault", 200)
    ips = [0x20, addr("_PyObject_MakeTpCall"), ev]
    got = _names(hybrid_stack([_py("f", True)], ips, resolve))
    assert got == ["f", "middle"]
    full = _names(hybrid_stack([_py("f", True)], ips, resolve, show_internal=True))
    assert full == ["f", "_PyObject_MakeTpCall", "middle"]


def test_truncated_native_stack_pairs_innermost_groups(py_lib, libs):
    addr, resolve_ip = py_lib
    lib = libs["dwarf5"]
    mid = {a for a, _, n in _Module(str(lib), None, 0).symtab.syms if n == "middle"}.pop()
    ext = Symbolizer(persistent=False).resolve(str(lib), read_build_id(lib), mid + 4)
    libc = Path("/lib/x86_64-linux-gnu/libc.so.6")
    root_frames = [Frame("__libc_start_call_main", "", 0, FrameKind.NATIVE, module=str(libc))]

    def resolve(ip):
        if ip == 0x20 - 1:
            return ext
        if ip == 0x30 - 1:
            return root_frames
        return resolve_ip(ip)

    ev = addr("_PyEval_EvalFrameDefault", 200)
    py = [_py("inner", True), _py("mid", True), _py("outer", True)]
    ips = [addr("PyList_Append"), ev, 0x20, ev]  # depth cap hit: 2 loops for 3 groups
    assert _names(hybrid_stack(py, ips, resolve)) == [
        "outer", "mid", "middle", "inner", "PyList_Append"]
    # the same counts on a stack that reached the process root: a real mismatch
    assert _names(hybrid_stack(py, [*ips, 0x30], resolve)) == [
        "outer", "mid", "inner", "PyList_Append"]


def test_stack_stopped_in_jit_code_keeps_its_frames_below_python(py_lib, libs):
    """numba: an array its JIT code allocates has [NRT_MemInfo_alloc_aligned, JIT address]
    and no more (no unwind information in the JIT's pages): those frames lie below the
    innermost Python frame, and are shown there rather than dropped."""
    addr, resolve_ip = py_lib
    lib = libs["dwarf5"]
    mid = {a for a, _, n in _Module(str(lib), None, 0).symtab.syms if n == "middle"}.pop()
    ext = Symbolizer(persistent=False).resolve(str(lib), read_build_id(lib), mid + 4)
    jit = [Frame("0x7f0000001233", "", 0, FrameKind.NO_SYMBOL)]  # in no object

    def resolve(ip):
        return ext if ip == 0x20 - 1 else jit if ip == 0x7F0000001234 - 1 else resolve_ip(ip)

    py = [_py("inner", False), _py("outer", True)]
    assert _names(hybrid_stack(py, [0x20, 0x7F0000001234], resolve)) == [
        "outer", "inner", "0x7f0000001233", "middle"]
    assert _names(hybrid_stack(py, [0x20, 0x7F0000001234], resolve, show_internal=True)) == [
        "outer", "inner", "0x7f0000001233", "middle"]
    # stopped in a known object with no loop seen (a stripped interpreter's unnamed loop,
    # say): where the frames belong is not known, the Python stack alone is shown
    assert _names(hybrid_stack(py, [0x20], resolve)) == ["outer", "inner"]
    # a JIT address in the middle of a stack that goes on to an eval loop changes nothing
    ev = addr("_PyEval_EvalFrameDefault", 200)
    assert _names(hybrid_stack(py, [0x20, 0x7F0000001234, ev], resolve)) == [
        "outer", "inner", "0x7f0000001233", "middle"]
