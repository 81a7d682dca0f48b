"""A burst of 15,000 distinct native stacks through the real reader into the model, with
names arriving in batches meanwhile: after every step of every update the tree's root
equals the reader's figures of its last commit exactly (in use, peak, allocated, count),
per thread too, and the tree built incrementally equals one built from scratch."""

from __future__ import annotations

import random

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.model import CallTree
from memtrace_core.model.metrics import (
    ALLOC_BYTES,
    ALLOC_COUNT,
    LIVE_BYTES,
    LIVE_COUNT,
    N_COUNTERS,
    PEAK_BYTES,
    PEAK_COUNT,
)
from memtrace_core.reader import StreamReader
from memtrace_core.symbols.hybrid import A_EVAL, A_PENDING, A_ROOT
from tests.streamgen import MALLOC, StreamWriter

LIB = "/opt/burst/libburst.so"
PY = "/opt/burst/libpython3.11.so.1.0"
LIB_BASE, PY_BASE = 0x7F0000000000, 0x7E0000000000
EVAL = PY_BASE + 0x5000  # return addresses inside the eval loop
START = PY_BASE + 0x100  # the thread root
N_STACKS = 15_000


class BatchNamer:
    """The namer protocol: eval loops and roots known at once, every other address
    `libburst.so+0x...` until its name arrives, `per_poll` names at a time."""

    def __init__(self, per_poll: int) -> None:
        self.per_poll = per_poll
        self.waiting: list[int] = []

    def classify(self, ips):
        out = []
        for ip in ips:
            if ip == EVAL:
                out.append((A_EVAL, [Frame("_PyEval_EvalFrameDefault", "ceval.c", 1,
                                           FrameKind.NATIVE, PY)]))
            elif ip == START:
                out.append((A_ROOT, [Frame("start_thread", "", 0, FrameKind.NATIVE, PY)]))
            else:
                self.waiting.append(ip)
                out.append((A_PENDING, [Frame(f"libburst.so+{ip - 1 - LIB_BASE:#x}", "", 0,
                                              FrameKind.UNRESOLVED, LIB)]))
        return out

    def poll(self):
        batch, self.waiting = self.waiting[:self.per_poll], self.waiting[self.per_poll:]
        # two addresses of a function share a name: stacks merge when named
        return {ip: [Frame(f"fn_{(ip - LIB_BASE) // 64}", "burst.c", (ip - LIB_BASE) // 64,
                           FrameKind.NATIVE, LIB)] for ip in batch}

    def pending(self) -> int:
        return len(self.waiting)

    def close(self) -> None:
        pass


def burst_stream(seed: int = 7) -> bytes:
    rng = random.Random(seed)
    w = StreamWriter(native=True)
    w.maps([[LIB, LIB_BASE, "aa" * 20, [[0, 0x1000000, 5, 0]]],
            [PY, PY_BASE, "bb" * 20, [[0, 0x100000, 5, 0]]]])
    for t in (1, 2, 3):
        w.thread(t, 1000 + t, f"t{t}")
    outer = [("main", "/app/main.py", 3)]
    py_inner = [*outer, ("work", "/app/work.py", 9)]
    pynodes = [w.py_stack(outer), w.py_stack(py_inner)]
    seen: set[tuple[int, ...]] = set()
    live: list[tuple[int, int]] = []  # (address, thread)
    addr = 0x10000
    tick = 0
    for i in range(N_STACKS):
        while True:  # a distinct native stack: root, eval loops, 40 library frames
            lib = tuple(LIB_BASE + 16 * rng.randrange(1, 3000) + 1 for _ in range(40))
            if lib not in seen:
                seen.add(lib)
                break
        ips = [START, EVAL, *lib[:20], EVAL, *lib[20:]]  # outermost first
        nat = w.native_stack(ips)
        thread = 1 + i % 3
        for _ in range(1 + i % 3):
            size = rng.randrange(1, 5000)
            w.alloc(thread, MALLOC, addr, size, pynodes[1], nat)
            live.append((addr, thread))
            addr += 0x10000
        while live and rng.random() < 0.55:  # frees across every stack seen so far
            a, t = live.pop(rng.randrange(len(live)))
            w.free(t, 10, a)
        if i % 500 == 0:
            tick += 10_000
            w.tick(tick)
    w.trailer()
    return w.data


def check(tree: CallTree) -> None:
    """The root holds the figures of the last commit, exactly."""
    f = tree.figures
    total = tree.root.total
    assert (total[LIVE_BYTES], total[LIVE_COUNT]) == (f.heap_bytes, f.heap_allocations)
    assert (total[PEAK_BYTES], total[PEAK_COUNT]) == (f.peak_bytes, f.peak_allocations)
    assert (total[ALLOC_BYTES], total[ALLOC_COUNT]) == (f.total_allocated_bytes,
                                                        f.total_allocations)


def per_thread(reader, tree: CallTree) -> dict[int, list[int]]:
    """Every counter per thread from the reader's stacks: the tree's baselines (the mark,
    the growth window's start) subtracted from in use as the tree should."""
    from array import array

    def baseline(ref) -> array:
        out = array("q")
        if ref is not None:
            out.frombytes(ref.snapshot)
        return out

    mark, grow = baseline(tree.mark), baseline(tree.growth_from)
    out: dict[int, list[int]] = {}
    for sid, row in enumerate(reader.stacks()):
        acc = out.setdefault(row[2], [0] * N_COUNTERS)
        live = row[5:7]
        deltas = []
        for base in (mark, grow):
            b = (base[2 * sid], base[2 * sid + 1]) if 2 * sid < len(base) else (0, 0)
            deltas += [live[0] - b[0], live[1] - b[1]]
        for i, n in enumerate((*row[3:], *reader.stack_temporary(sid), *deltas)):
            acc[i] += n
    return out


def paths(tree: CallTree, n: int) -> list[tuple]:
    """Every stack's path as (function, line) pairs."""
    frames = tree.frames
    return [tuple((frames[i].function, frames[i].line) for i in tree.core.stack_path(sid))
            for sid in range(n)]


def locations(tree: CallTree) -> dict:
    out = {}
    for fid in tree.core.locations(1, ALLOC_COUNT):
        f = tree.frames[fid]
        own, total, _user = tree.core.location(fid)
        out[(f.function, f.line)] = (tuple(own), tuple(total))
    return out


def test_burst_exact_after_every_step():
    data = burst_stream()
    reader = StreamReader()
    namer = BatchNamer(per_poll=400)
    tree = CallTree(reader, namer, native=True)
    steps = updates = 0
    for pos in range(0, len(data), 256 << 10):
        reader.feed(data[pos:pos + (256 << 10)])
        tree.begin()
        while True:
            done = tree.step(0.002)  # short steps: the UI would repaint between them
            steps += 1
            check(tree)
            if done:
                break
        updates += 1
        assert tree.thread_totals() == per_thread(reader, tree)
        if updates % 5 == 0:  # one thread's numbers are its own
            tree.set_thread(2)
            check_thread = per_thread(reader, tree)[2]
            assert tree.root.total == check_thread
            tree.set_thread(None)
            check(tree)
    reader.finish()
    assert reader.complete and reader.n_stacks == N_STACKS
    assert steps > updates  # the big updates took several steps
    while namer.pending():  # the remaining names arrive
        tree.update()
        check(tree)
    assert not tree.core.busy and tree.core.pending_stacks == 0
    shown = [f for fid, f in enumerate(tree.frames) if any(tree.core.location(fid)[1])]
    assert shown and all(f.kind is not FrameKind.UNRESOLVED for f in shown)
    fresh = CallTree(reader, _AllNamed(), native=True)
    fresh.set_growth_from(tree.growth_from)  # the same start of the growth window
    fresh.rebuild()
    assert paths(fresh, N_STACKS) == paths(tree, N_STACKS)
    assert locations(fresh) == locations(tree)
    assert fresh.node_count() == tree.node_count()
    assert fresh.root.total == tree.root.total
    assert tree.root.total[LIVE_BYTES] == reader.heap_bytes


class _AllNamed(BatchNamer):
    """Every address named at once (the tree a report builds)."""

    def __init__(self) -> None:
        super().__init__(per_poll=0)

    def classify(self, ips):
        out = []
        for (flags, frames), ip in zip(super().classify(ips), ips, strict=True):
            if flags & A_PENDING:
                frames = [Frame(f"fn_{(ip - LIB_BASE) // 64}", "burst.c",
                                (ip - LIB_BASE) // 64, FrameKind.NATIVE, LIB)]
                flags = 0
            out.append((flags, frames))
        self.waiting = []
        return out
