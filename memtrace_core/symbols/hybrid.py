"""Merge a native stack with the Python stack the interpreter was running.

Since CPython 3.11 one C call of `_PyEval_EvalFrameDefault` runs several Python
frames: from an innermost one out to the next *entry* frame. Each eval-loop native
frame is replaced by its group. (On 3.10 every Python frame has its own C call: the
tracer marks each one an entry, so each group is one frame, and the interpreter's C
frames between them are call glue, hidden like the rest.) More eval loops than groups
means the Python stack was cut at its outer end (runner frames trimmed): the innermost
loops take the groups. Fewer loops than groups with a native stack that stops short of
the process/thread root (depth cap, no unwind info) means the loops seen are the
innermost: they take the innermost groups and the outer groups follow as Python frames.
Fewer loops on a complete native stack is a real mismatch: the Python-only stack is
returned (plus the native frames below the innermost eval loop) rather than a wrong merge.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable

from ..frames import Frame, FrameKind

EVAL_FUNCTIONS = frozenset({"_PyEval_EvalFrameDefault"})


_PYTHON_EXE = re.compile(r"^python\d*(\.\d+)?[a-z]*$")


@functools.lru_cache(maxsize=4096)
def is_interpreter_module(module: str) -> bool:
    """libpython, or a (statically linked) python executable."""
    base = os.path.basename(module)
    return base.startswith("libpython") or bool(_PYTHON_EXE.match(base))


def is_memtrace_frame(frame: Frame) -> bool:
    return "memtrace_core" in frame.module or (
        frame.kind is FrameKind.PYTHON and f"{os.sep}memtrace_core{os.sep}" in frame.file)


def is_import_machinery(frame: Frame) -> bool:
    """importlib's and runpy's frozen frames: hidden by default, as in Python-only stacks."""
    return frame.kind is FrameKind.PYTHON and (
        frame.file.startswith("<frozen ") or frame.file.endswith(f"{os.sep}runpy.py"))


def _groups(py_frames: list[tuple[Frame, bool]]) -> list[list[Frame]]:
    """Python frames (innermost first) cut after each entry frame."""
    groups: list[list[Frame]] = []
    cur: list[Frame] = []
    for frame, is_entry in py_frames:
        cur.append(frame)
        if is_entry:
            groups.append(cur)
            cur = []
    if cur:
        groups.append(cur)
    return groups


def _drop_call_glue(merged: list[tuple[Frame, bool]]) -> list[tuple[Frame, bool]]:
    """Below the innermost Python frame, interpreter frames that only lead to an
    extension's function (e.g. _PyObject_MakeTpCall before numpy's add) are glue; when the
    interpreter itself allocates (list_resize...) its frames are the answer and stay."""
    p = next((i for i, (f, _) in enumerate(merged) if f.kind is FrameKind.PYTHON), None)
    if p is None:
        return merged
    tail = merged[:p]  # innermost first
    j = len(tail)
    while j > 0 and is_interpreter_module(tail[j - 1][0].module):
        j -= 1
    if j == 0 or j == len(tail):  # all interpreter, or no glue
        return merged
    return tail[:j] + merged[p:]


ROOT_FUNCTIONS = ("_start", "__libc_start_main", "__libc_start_call_main", "start_thread",
                  "clone", "clone3", "__clone", "__clone3", "thread_start")


def _truncated(natives: list[list[Frame]]) -> bool:
    """True when the outermost native frame is not where processes and threads start."""
    if not natives or not natives[-1]:
        return True
    name = natives[-1][-1].function
    return not any(name == r or name.startswith(r + "_") for r in ROOT_FUNCTIONS)


def _is_eval(frames: list[Frame]) -> bool:
    return bool(frames) and frames[-1].function in EVAL_FUNCTIONS


def _pair(natives: list[list[Frame]], groups: list[list[Frame]]
          ) -> list[tuple[Frame, bool]]:
    """Eval loops replaced by groups, innermost first; groups left over (the unwinder
    stopped early) follow as Python frames only. The flag: outward of the first group."""
    merged: list[tuple[Frame, bool]] = []
    g = 0
    for fr in natives:
        if _is_eval(fr) and g < len(groups):
            merged.extend((f, True) for f in groups[g])
            g += 1
        else:
            merged.extend((f, g > 0) for f in fr)
    for group in groups[g:]:
        merged.extend((f, True) for f in group)
    return merged


def hybrid_stack(py_frames: list[tuple[Frame, bool]], native_ips: list[int],
                 resolve_ip: Callable[[int], list[Frame]],
                 show_internal: bool = False) -> list[Frame]:
    """One call path, outermost first.

    py_frames: (Frame, is_entry) innermost first. native_ips: return addresses,
    innermost first; resolve_ip is called with ip - 1 (the call instruction) and returns
    that address's frames innermost first. With show_internal False, interpreter frames
    outward of the innermost Python frame and memtrace's own frames are hidden.
    """
    natives = [resolve_ip(ip - 1) for ip in native_ips]  # innermost first, each inner-first
    groups = _groups(py_frames)
    eval_at = [i for i, fr in enumerate(natives) if _is_eval(fr)]
    merged: list[tuple[Frame, bool]] = []  # innermost first; bool = outward of 1st py frame
    if not groups:
        for fr in natives:
            merged.extend((f, False) for f in fr)
    elif len(eval_at) >= len(groups) or (eval_at and _truncated(natives)):
        # more loops than groups: the Python stack was cut at its outer end (the tracer
        # trims memtrace's runner frames). Fewer loops on a native stack that stops short
        # of the process/thread root (depth cap, no unwind info): the loops seen are the
        # innermost ones. Either way the innermost loops take the innermost groups.
        merged = _pair(natives, groups)
    else:
        # fallback: native frames below the innermost eval loop belong to the innermost
        # Python frame for sure; anything further out cannot be placed safely
        if eval_at:
            for fr in natives[:eval_at[0]]:
                merged.extend((f, False) for f in fr)
        merged.extend((f, True) for f, _ in py_frames)
    out: list[Frame] = []
    if show_internal:
        out = [f for f, _ in merged]
    else:
        merged = _drop_call_glue(merged)
        n_py_total = sum(1 for f, _ in merged if f.kind is FrameKind.PYTHON)
        n_py_seen = 0
        for f, outward in merged:
            if is_memtrace_frame(f):
                continue
            if f.kind is FrameKind.PYTHON:
                n_py_seen += 1
                if is_import_machinery(f):
                    continue
            elif outward and (is_interpreter_module(f.module) or n_py_seen == n_py_total):
                # interpreter glue between Python frames, and process/thread start-up
                # code outward of the outermost Python frame
                continue
            out.append(f)
    out.reverse()
    return out
