"""The tracer reuses a thread's previous native stack when the hook's caller and every saved
return address are unchanged. These tests make that shortcut as easy to get wrong as
possible: one C function allocating at the same stack depth under two different callers,
alternating and in runs, must always be attributed to the caller that really called it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.tracer.tracer_support import functions_on_stack

LIB = r"""
#include <stdlib.h>
void *volatile sink;
__attribute__((noinline)) void *common(size_t n) { void *p = malloc(n); sink = p; return p; }
/* same frame layout, different return addresses into them */
__attribute__((noinline)) void *path_a(size_t n) { void *p = common(n); sink = p; return p; }
__attribute__((noinline)) void *path_b(size_t n) { void *p = common(n); sink = p; return p; }
/* pattern: a run of 'a'/'b' letters; every block is leaked so each one stays in the capture */
void drive(const char *pattern, int rounds) {
    for (int r = 0; r < rounds; r++)
        for (const char *c = pattern; *c; c++)
            (*c == 'a' ? path_a : path_b)(*c == 'a' ? 1111 : 2222);
}
"""

SCRIPT = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.drive.argtypes = [ctypes.c_char_p, ctypes.c_int]
def from_python_a():
    lib.drive(b"aaab", 50)
def from_python_b():
    lib.drive(b"abbbab", 50)
from_python_a()
from_python_b()
from_python_a()
"""


@pytest.fixture(scope="module")
def reuse_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("reuse")
    (d / "reuse.c").write_text(LIB)
    subprocess.run(["gcc", "-g", "-O1", "-fPIC", "-shared", "-o", str(d / "libreuse.so"),
                    str(d / "reuse.c")], check=True)
    return d / "libreuse.so"


def test_each_block_is_attributed_to_its_real_caller(mt, tmp_path, reuse_lib):
    run = mt.trace(tmp_path, SCRIPT, str(reuse_lib), options=("--native",)).check()
    reader = run.reader
    expected = {1111: 0, 2222: 0}
    # from_python_a: 50 x "aaab" twice; from_python_b: 50 x "abbbab"
    expected[1111] = 2 * 50 * 3 + 50 * 2
    expected[2222] = 2 * 50 * 1 + 50 * 4
    seen = {1111: 0, 2222: 0}
    for _addr, size, sid, _alloc in reader.live_allocations():
        if size not in seen:
            continue
        nativenode = reader.stack_key(sid)[1]
        names = functions_on_stack(reader, nativenode, reuse_lib)
        want = "path_a" if size == 1111 else "path_b"
        assert names == ["common", want, "drive"], (size, names)
        seen[size] += 1
    assert seen == expected


LEVELS = 9  # the chain's levels between the allocating function and drive_deep

# A chain of calls drive_deep -> level 9 -> ... -> level 1 -> common, each level's function
# a_K or b_K (the same code), all called through one table at one call site: two stacks
# differ in the return address of one level alone, at whatever depth the test picks.
DEEP_LIB = "#include <stdlib.h>\n" \
    "void *volatile sink;\n" \
    "typedef void *(*level_fn)(size_t);\n" \
    f"level_fn lvl[{LEVELS + 1}];\n" \
    "__attribute__((noinline)) void *common(size_t n) " \
    "{ void *p = malloc(n); sink = p; return p; }\n" + "".join(
        f"__attribute__((noinline)) void *{v}_{k}(size_t n) "
        f"{{ void *p = lvl[{k - 1}](n); sink = p; return p; }}\n"
        for k in range(1, LEVELS + 1) for v in "ab") + """
/* pattern: 'a'/'b' letters choosing level `depth`'s function; the other levels use a_K */
void drive_deep(const char *pattern, int depth, int rounds) {
    lvl[0] = common;
""" + "".join(f"    lvl[{k}] = a_{k};\n" for k in range(1, LEVELS + 1)) + """
    level_fn a[] = {0""" + "".join(f", a_{k}" for k in range(1, LEVELS + 1)) + """};
    level_fn b[] = {0""" + "".join(f", b_{k}" for k in range(1, LEVELS + 1)) + f"""}};
    for (int r = 0; r < rounds; r++)
        for (const char *c = pattern; *c; c++) {{
            lvl[depth] = *c == 'a' ? a[depth] : b[depth];
            lvl[{LEVELS}](1000 * depth + (*c == 'a' ? 1 : 2));
        }}
}}
"""

DEEP_SCRIPT = f"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.drive_deep.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
for depth in range(1, {LEVELS + 1}):
    lib.drive_deep(b"aabab", depth, 20)
"""


def test_a_stack_that_differs_at_one_depth_alone_is_seen_at_every_depth(mt, tmp_path):
    """Two stacks the same but for one return address, at depth 1 to 9 under the
    allocating function (every position of the kept unwinding's test, whichever order it
    compares them in): each block is attributed to the function it really went through."""
    (tmp_path / "deep.c").write_text(DEEP_LIB)
    lib = tmp_path / "libdeep.so"
    subprocess.run(["gcc", "-g", "-O1", "-fPIC", "-shared", "-o", str(lib),
                    str(tmp_path / "deep.c")], check=True)
    run = mt.trace(tmp_path, DEEP_SCRIPT, str(lib), options=("--native",)).check()
    reader = run.reader
    seen: dict[int, int] = {}
    for _addr, size, sid, _alloc in reader.live_allocations():
        depth, letter = divmod(size, 1000)
        if not 1 <= depth <= LEVELS or letter not in (1, 2):
            continue
        names = functions_on_stack(reader, reader.stack_key(sid)[1], lib)
        want = ["common"] + [f"{'b' if k == depth and letter == 2 else 'a'}_{k}"
                             for k in range(1, LEVELS + 1)] + ["drive_deep"]
        assert names == want, (size, names)
        seen[size] = seen.get(size, 0) + 1
    # "aabab" 20 times at each depth: 60 blocks through a_K, 40 through b_K
    assert seen == {1000 * d + letter: 60 if letter == 1 else 40
                    for d in range(1, LEVELS + 1) for letter in (1, 2)}


THREADS = """
import ctypes, sys, threading
lib = ctypes.CDLL(sys.argv[1])
lib.drive.argtypes = [ctypes.c_char_p, ctypes.c_int]
N = 100


def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


ready = threading.Barrier(N + 1)
go = threading.Event()


def worker():
    lib.drive(b"ab", 2)  # four allocations in C, each with its native stack
    ready.wait()
    go.wait()


threads = [threading.Thread(target=worker) for _ in range(N)]
before = rss()
for t in threads:
    t.start()
ready.wait()
grown = rss() - before  # KiB, every thread alive
go.set()
for t in threads:
    t.join()
print(grown)
"""


def test_threads_that_unwind_a_little_keep_no_unwinding_cache(mt, tmp_path, reuse_lib):
    """libunwind's unw_backtrace makes each thread that calls it a cache of 256 KiB; a
    thread's first unwindings go step by step instead, so 100 threads that allocate four
    times each grow the process by about what they cost untraced (2-3 MiB here), not by
    25 MiB more; and their stacks are right."""
    run = mt.trace(tmp_path, THREADS, str(reuse_lib), options=("--native",)).check()
    grown_kib = int(run.proc.stdout.decode().split()[-1])
    assert grown_kib < 100 * 100, grown_kib  # 256 KiB a thread would be 25,600
    seen = {1111: 0, 2222: 0}
    for _addr, size, sid, _alloc in run.reader.live_allocations():
        if size in seen:
            names = functions_on_stack(run.reader, run.reader.stack_key(sid)[1], reuse_lib)
            assert names == ["common", "path_a" if size == 1111 else "path_b", "drive"]
            seen[size] += 1
    assert seen == {1111: 200, 2222: 200}
