"""The rules of hybrid (Python + native) stacks: which native frames are the evaluation loop,
where processes and threads start, and which frames a default view hides.

The merge itself runs in C (memtrace_core/model/_tree.pyx: `merge_frames`, one
implementation for `live`, `view` and every report); this module says what each frame and
address is, as bit flags the merge reads:

- Since CPython 3.11 one C call of `_PyEval_EvalFrameDefault` runs several Python frames,
  from an innermost one out to the next *entry* frame. Each eval-loop native frame is
  replaced by its group. (On 3.10 every Python frame has its own C call: the tracer marks
  each one an entry, so each group is one frame, and the interpreter's C frames between
  them are call glue, hidden like the rest.) More eval loops than groups means the Python
  stack was cut at its outer end (runner frames trimmed): the innermost loops take the
  groups. Fewer loops than groups with a native stack that stops short of the process or
  thread root (depth cap, no unwind info) means the loops seen are the innermost: they take
  the innermost groups and the outer groups follow as Python frames. A stack the tracer cut
  at its depth limit ends in a cut marker (`… N frames cut`, always shown): its kept frames
  are the innermost, so with no loop among them they all lie inside the innermost Python
  frame; so do the frames of a stack that stopped, with no loop among them, at code in no
  loaded object (numba's or another JIT's: no unwind information there), which is how an
  array a numba function allocates keeps `NRT_MemInfo_alloc_aligned` and the JIT frame
  under the Python line that called it. Fewer loops on a complete native stack is a real
  mismatch: the Python-only stack is returned (plus the native frames below the innermost
  eval loop) rather than a wrong merge.
- Hidden by default: memtrace's own frames, importlib's and runpy's frames, interpreter
  frames between Python frames, process/thread start-up code outward of the outermost
  Python frame, and the interpreter's call glue just below the innermost Python frame when
  it only leads to an extension's function (when the interpreter itself allocates, e.g.
  list_resize, its frames are the answer and stay), and an installed extension's own
  allocator at a stack's innermost end (F_ALLOC, below).

Eval loops and process roots are recognised from the ELF symbol table (`Namer`), so the
merge never waits for DWARF names.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable

from ..frames import Frame, FrameKind, cut_frame, cut_frames, is_cut_frame

EVAL_FUNCTIONS = frozenset({"_PyEval_EvalFrameDefault"})
ROOT_FUNCTIONS = ("_start", "__libc_start_main", "__libc_start_call_main", "start_thread",
                  "clone", "clone3", "__clone", "__clone3", "thread_start")
_ROOT_SET = frozenset(ROOT_FUNCTIONS)
_ROOT_PREFIXES = tuple(r + "_" for r in ROOT_FUNCTIONS)  # clone_x, start_thread_y: roots too

# frame flags (one byte per frame in the tree builder)
F_PY = 1  # a Python frame
F_INTERP = 2  # native, in the interpreter (libpython or a static python executable)
F_MEMTRACE = 4  # memtrace's own frame (tracer, runner)
F_IMPORT = 8  # importlib / runpy plumbing (hidden like memtrace's frames)
F_USER = 16  # user code: a Python frame, or native code outside the system and site dirs
F_MATCH = 32  # matches the tree's substring filter (set by the tree builder)
F_CUT = 64  # "… N frames cut": where the tracer cut a deep native stack (always shown)
F_ALLOC = 128  # native, inside an allocator's own code (hidden at a stack's innermost end)

# address flags (one byte per distinct return address)
A_EVAL = 1  # inside the evaluation loop
A_ROOT = 2  # inside a function where processes and threads start
A_PENDING = 4  # its frames are provisional (`lib+0xoffset`): the name is on its way
A_CUT = 8  # not an address: the tracer's cut marker (frames beyond the outermost left out)
A_ANON = 16  # in no loaded object (JIT-compiled code): the unwinder stops there, no unwind info

_PYTHON_EXE = re.compile(r"^python\d*(\.\d+)?[a-z]*$")
_CORE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=4096)
def is_interpreter_module(module: str) -> bool:
    """libpython, or a (statically linked) python executable."""
    base = os.path.basename(module)
    return base.startswith("libpython") or bool(_PYTHON_EXE.match(base))


def is_memtrace_frame(frame: Frame) -> bool:
    return "memtrace_core" in frame.module or (
        frame.kind is FrameKind.PYTHON and (f"{os.sep}memtrace_core{os.sep}" in frame.file
                                            or frame.file.startswith(_CORE_DIR)))


def is_import_machinery(frame: Frame) -> bool:
    """importlib's and runpy's frozen frames: hidden by default, as in Python-only stacks."""
    return frame.kind is FrameKind.PYTHON and (
        frame.file.startswith("<frozen ") or frame.file.endswith(f"{os.sep}runpy.py"))


def is_internal_python(frame: Frame) -> bool:
    """Interpreter plumbing (import machinery, runpy) and memtrace's own runner frames."""
    return is_import_machinery(frame) or (frame.kind is FrameKind.PYTHON
                                          and is_memtrace_frame(frame))


def _system_dirs() -> tuple[str, ...]:
    dirs = {"/usr/", "/lib/", "/lib64/", "/snap/", os.sep + "site-packages" + os.sep,
            os.sep + "dist-packages" + os.sep}
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        if prefix and prefix != os.sep:
            dirs.add(prefix.rstrip(os.sep) + os.sep)
    return tuple(dirs)


_SYSTEM_DIRS = _system_dirs()


@functools.lru_cache(maxsize=4096)
def is_user_module(module: str) -> bool:
    """Native code the user wrote: not the interpreter, libc and other system libraries,
    installed packages (site-packages) or memtrace."""
    if not module or is_interpreter_module(module) or "memtrace_core" in module:
        return False
    return not any(d in module or module.startswith(d) for d in _SYSTEM_DIRS)


# An allocator inside an extension (polars' jemalloc, Arrow's mimalloc) is called directly,
# not through malloc, so the tracer records the mappings it makes for its own pools, at the
# end of a chain of its own functions: `_rjem_je_pages_map` was the top leak of a polars
# program. Its caller is the allocation's place: the allocator's frames at the innermost
# end of a stack are hidden by default, as the interpreter's glue is. Installed code only
# (never a user's own library), by the allocators' symbol prefixes, and Rust's global
# allocator glue (`__rust_alloc`, `<X as core::alloc::global::GlobalAlloc>::alloc`).
_ALLOCATOR_PREFIXES = ("_rjem_", "je_", "_mi_", "mi_", "tc_", "TCMalloc", "tcmalloc::",
                       "__rust_alloc", "__rust_realloc", "__rdl_", "__rg_",
                       "tikv_jemallocator::", "tikv_jemalloc_sys::")
_GLOBAL_ALLOC = " as core::alloc::global::GlobalAlloc>::"


@functools.lru_cache(maxsize=65536)
def is_allocator_function(name: str) -> bool:
    """A function of a memory allocator's own code, by its (demangled) name."""
    return name.lstrip("<").startswith(_ALLOCATOR_PREFIXES) or _GLOBAL_ALLOC in name


def frame_flags(frame: Frame) -> int:
    """The F_* bits of one frame."""
    if is_cut_frame(frame):
        return F_CUT
    if frame.kind is FrameKind.PYTHON:
        flags = F_PY
        if is_memtrace_frame(frame):
            flags |= F_MEMTRACE
        elif is_import_machinery(frame):
            flags |= F_IMPORT
        else:
            flags |= F_USER
        return flags
    flags = 0
    module = frame.module
    if module:
        if is_interpreter_module(module):
            flags |= F_INTERP
        if "memtrace_core" in module:
            flags |= F_MEMTRACE
        if is_user_module(module):
            flags |= F_USER
        elif is_allocator_function(frame.function):
            flags |= F_ALLOC
    return flags


def is_root_function(name: str) -> bool:
    """A function where a process or a thread starts (the native stack is complete)."""
    return name in _ROOT_SET or name.startswith(_ROOT_PREFIXES)


def address_flags(frames: list[Frame]) -> int:
    """A_EVAL / A_ROOT of an address from its frames (innermost first: the last one is the
    function the address is in, the others are inlined into it)."""
    if not frames:
        return 0
    if not frames[-1].module and frames[-1].kind is FrameKind.NO_SYMBOL:
        return A_ANON
    name = frames[-1].function.split(".", 1)[0]  # symbol-table parts: f.cold, f.part.0
    return (A_EVAL if name in EVAL_FUNCTIONS else 0) | (A_ROOT if is_root_function(name)
                                                       else 0)


def cut_address(ip: int) -> tuple[int, list[Frame]] | None:
    """(A_CUT, [the marker frame]) for the tracer's cut marker, None for a real address."""
    count = cut_frames(ip)
    return None if count is None else (A_CUT, [cut_frame(count)])


def hybrid_stack(py_frames: list[tuple[Frame, bool]], native_ips: list[int],
                 resolve_ip: Callable[[int], list[Frame]],
                 show_internal: bool = False) -> list[Frame]:
    """One call path, outermost first, through the tree builder's merge.

    py_frames: (Frame, is_entry) innermost first. native_ips: return addresses, innermost
    first; resolve_ip is called with ip - 1 (the call instruction) and returns that
    address's frames innermost first (eval loops and roots are recognised by name here).
    """
    from memtrace_core.model._tree import merge_frames

    table: list[Frame] = []
    ids: dict[Frame, int] = {}

    def fid(frame: Frame) -> int:
        i = ids.get(frame)
        if i is None:
            i = ids[frame] = len(table)
            table.append(frame)
        return i

    py = [(fid(f), bool(e)) for f, e in py_frames]
    natives = []
    for ip in native_ips:
        cut = cut_address(ip)
        if cut is not None:
            natives.append(([fid(f) for f in cut[1]], cut[0]))
            continue
        frames = resolve_ip(ip - 1)
        natives.append(([fid(f) for f in frames], address_flags(frames)))
    flags = [frame_flags(f) for f in table]
    return [table[i] for i in merge_frames(py, natives, flags, show_internal)]
