"""An allocation whose Python stack is the thread's previous one is recognised by one walk
that compares the frames as it goes, outwards from the innermost, and stops at the first
that differs. These tests make that shortcut as easy to get wrong as possible: every
allocation comes from the same instruction of the same function, run in a frame at the same
place of the thread's frame stack, and only a frame further out differs from the previous
call's (the caller's line, or how deep a recursion goes). Each call allocates BLOCKS blocks:
the first one's stack differs from the one before, the second's is found the same by the
walk, from the third on by where the frames lay (the key the walk left), which the next
call's first block must then find out of date. Every block must still carry its own stack,
with the GIL released (ctypes.CDLL) and held (ctypes.PyDLL)."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

SIZE = 12_345
ROUNDS = 300
BLOCKS = 4

LIB = r"""
#include <stdlib.h>
#include <string.h>
/* k blocks of n bytes (n >= sizeof(void *)), each pointing to the one before. */
void *keep(size_t n, int k) {
    void *last = NULL;
    for (int i = 0; i < k; i++) {
        void **p = malloc(n);
        if (!p) return last;
        memset(p, 1, n);
        *p = last;
        last = p;
    }
    return last;
}
"""

SCRIPT = f"""
import ctypes, sys
lib = getattr(ctypes, sys.argv[2])(sys.argv[1])
lib.keep.argtypes = [ctypes.c_size_t, ctypes.c_int]
lib.keep.restype = ctypes.c_void_p


def leaf():
    return lib.keep({SIZE}, {BLOCKS})  # leaf


def parent(out):
    out.append(leaf())  # first
    out.append(leaf())  # second


def deeper(out, n):
    if n:
        return deeper(out, n - 1)  # recurse
    out.append(leaf())  # bottom


out = []
for i in range({ROUNDS}):
    parent(out)  # parent
    deeper(out, i % 3)  # deeper
"""


def line_of(mark: str) -> int:
    return next(n + 1 for n, text in enumerate(SCRIPT.splitlines()) if text.endswith(f"# {mark}"))


@pytest.fixture(scope="module")
def keep_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keep")
    (d / "keep.c").write_text(LIB)
    subprocess.run(["gcc", "-O1", "-fPIC", "-shared", "-o", str(d / "libkeep.so"),
                    str(d / "keep.c")], check=True)
    return d / "libkeep.so"


@pytest.mark.parametrize("loader", ["CDLL", "PyDLL"])
@pytest.mark.parametrize("native", [False, True])
def test_each_block_has_its_callers_stack(mt, tmp_path, keep_lib, loader, native):
    run = mt.trace(tmp_path, SCRIPT, str(keep_lib), loader,
                   options=("--native",) if native else ()).check()
    reader = run.reader
    stacks: Counter[tuple[tuple[str, int], ...]] = Counter()
    for _addr, size, sid, _alloc in reader.live_allocations():
        if size == SIZE:
            frames = reader.py_stack(reader.stack_key(sid)[0])
            stacks[tuple((reader.codes[code][0], line) for code, line, _entry in frames)] += 1
    leaf = ("leaf", line_of("leaf"))
    want: Counter[tuple[tuple[str, int], ...]] = Counter()
    for call in ("first", "second"):
        want[(leaf, ("parent", line_of(call)), ("<module>", line_of("parent")))] = ROUNDS * BLOCKS
    for depth in range(3):
        recursion = (("deeper", line_of("recurse")),) * depth
        chain = (leaf, ("deeper", line_of("bottom")), *recursion, ("<module>", line_of("deeper")))
        want[chain] = ROUNDS // 3 * BLOCKS
    assert stacks == want
