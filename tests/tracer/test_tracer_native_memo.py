"""Native stacks are interned frame by frame, root first; a thread that looks up many frames
keeps its own small map of the nodes it found, (parent, ip) to node, in front of the shared
table, direct-mapped, so a slot holds the last node that hashed to it. These tests make
that map as easy to get wrong as possible: 4,096 different 13-frame stacks that differ near
their root from one allocation to the next (every frame below the change is looked up
again), more nodes than the map has slots (every slot is overwritten again and again), on
one thread and on two at once; every block must still carry its own stack."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.tracer.tracer_support import functions_on_stack

DEPTH = 12  # 4,096 paths: 12,286 trie nodes in this library below drive, the map 4,096 slots
ROUNDS = 3
BASE = 10_000  # a block's size is BASE + its path: the path its stack must show

LIB = r"""
#include <stdlib.h>
void *volatile sink;
static __attribute__((noinline)) void *leaf(unsigned path) {
    void *p = malloc(BASE + path); sink = p; return p;
}
/* static: no second symbol (gcc's .localalias) names the same code */
static __attribute__((noinline)) void *go_left(unsigned path, int depth);
static __attribute__((noinline)) void *go_right(unsigned path, int depth);
/* the decision for bit depth-1 of the path: the root's is the path's highest bit */
#define STEP(path, depth)                                                   \
    ((depth) == 0 ? leaf(path)                                              \
     : (((path) >> ((depth) - 1)) & 1) ? go_right(path, (depth) - 1)        \
                                       : go_left(path, (depth) - 1))
static void *go_left(unsigned path, int depth) { void *p = STEP(path, depth); sink = p; return p; }
static void *go_right(unsigned path, int depth) { void *p = STEP(path, depth); sink = p; return p; }

static unsigned reversed(unsigned x, int bits) {
    unsigned r = 0;
    for (int i = 0; i < bits; i++) r |= ((x >> i) & 1u) << (bits - 1 - i);
    return r;
}
/* every path `rounds` times, in bit-reversed order (consecutive paths part at the root),
 * then in order (they part near the leaf), then reversed again; every block is kept */
void drive(int depth, int rounds, int flip) {
    unsigned n = 1u << depth;
    for (int r = 0; r < rounds; r++)
        for (unsigned i = 0; i < n; i++) {
            unsigned path = r % 2 ? i : reversed(i, depth);
            void *p = STEP(flip ? n - 1 - path : path, depth);
            sink = p;
        }
}
""".replace("BASE", str(BASE))

SCRIPT = f"""
import ctypes, sys, threading
lib = ctypes.CDLL(sys.argv[1])
lib.drive.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
threads = int(sys.argv[2])
runs = [threading.Thread(target=lib.drive, args=({DEPTH}, {ROUNDS}, k)) for k in range(threads)]
for t in runs:
    t.start()
for t in runs:
    t.join()
"""


@pytest.fixture(scope="module")
def memo_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("memo")
    (d / "memo.c").write_text(LIB)
    subprocess.run(["gcc", "-g", "-O1", "-fno-optimize-sibling-calls", "-fPIC", "-shared",
                    "-o", str(d / "libmemo.so"), str(d / "memo.c")], check=True)
    return d / "libmemo.so"


@pytest.mark.parametrize("threads", [1, 2])
def test_every_block_carries_its_own_path(mt, tmp_path, memo_lib, threads):
    run = mt.trace(tmp_path, SCRIPT, str(memo_lib), str(threads),
                   options=("--native",)).check()
    reader = run.reader
    seen: dict[int, int] = {}
    named: dict[int, list[str]] = {}  # by native node: each stack is named once
    for _addr, size, sid, _alloc in reader.live_allocations():
        path = size - BASE
        if not 0 <= path < 1 << DEPTH:
            continue
        node = reader.stack_key(sid)[1]
        if node not in named:
            named[node] = functions_on_stack(reader, node, memo_lib)
        names = named[node]
        if "leaf" not in names:
            continue
        # innermost first: leaf, then the decisions from the last (bit 0) to the root's
        turns = [name for name in names if name.startswith("go_")]
        want = ["go_right" if path >> bit & 1 else "go_left" for bit in range(DEPTH)]
        assert names[0] == "leaf" and names[-1] == "drive", (path, names)
        assert turns == want, (path, names)
        seen[path] = seen.get(path, 0) + 1
    assert seen == {path: ROUNDS * threads for path in range(1 << DEPTH)}


STOPPED = f"""
import ctypes, os, sys, threading
from memtrace_core.tracer import _tracer
from memtrace_core.tracer.header import header_record

fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
_tracer.start(fd, True, False, header_record({{"format": _tracer.FORMAT_VERSION,
                                              "pid": os.getpid(), "argv": [],
                                              "native": True}}))
lib = ctypes.CDLL(sys.argv[1])
lib.drive.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
ran, done = threading.Barrier(3), threading.Event()


def worker(k):
    lib.drive({DEPTH}, {ROUNDS}, k)
    ran.wait()
    done.wait()  # alive after the stop: a thread that ends takes its map with it


threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
for t in threads:
    t.start()
ran.wait()
during = _tracer.memo_resident_bytes()
_tracer.stop(0)
os.close(fd)
_tracer.release()  # as a detach does
after = _tracer.memo_resident_bytes()
done.set()
for t in threads:
    t.join()
print(during, after)
"""


def test_a_stopped_recording_hands_back_the_maps(mt, tmp_path, memo_lib):
    """A detach hands the maps back with the rings' records: two threads that used theirs (64
    KiB each: 12,286 nodes in 4,096 slots touch every page) keep none of it after the stop,
    while they live on."""
    (tmp_path / "prog.py").write_text(STOPPED)
    proc = mt.plain("prog.py", str(memo_lib), str(tmp_path / "stopped.mtrace"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    during, after = map(int, proc.stdout.split())
    assert during == 2 * 64 * 1024, during
    assert after == 0, after
