"""Since-mark and growth: per node, in use now minus in use at the mark / at the growth
window's start, exact against the stream's own ground truth, incrementally and after a
rebuild, per thread, and for the whole program."""

from __future__ import annotations

from memtrace_core.model import CallTree, Metric
from memtrace_core.model.metrics import (
    GROWTH_BYTES,
    GROWTH_COUNT,
    MARK_BYTES,
    MARK_COUNT,
    format_rate,
    format_signed,
)
from memtrace_core.reader import StreamReader
from tests.streamgen import FREE_FN, MALLOC, StreamWriter

WARM = [("main", "/app/svc.py", 3), ("warm_up", "/app/svc.py", 10)]
LEAK = [("main", "/app/svc.py", 3), ("handle", "/app/svc.py", 20)]
CHURN = [("main", "/app/svc.py", 3), ("cache", "/app/svc.py", 30)]


class Program:
    """A stream written step by step and fed to a reader as it goes (like a live pipe)."""

    def __init__(self) -> None:
        self.w = StreamWriter()
        self.w.thread(1, 100, "MainThread")
        self.w.thread(2, 101, "worker")
        self.nodes = {name: self.w.py_stack(stack) for name, stack in
                      (("warm", WARM), ("leak", LEAK), ("churn", CHURN))}
        self.reader = StreamReader()
        self.fed = 0
        self.addr = 0x100000

    def alloc(self, where: str, size: int, thread: int = 1) -> int:
        self.addr += 0x1000
        self.w.alloc(thread, MALLOC, self.addr, size, self.nodes[where])
        return self.addr

    def free(self, addr: int, thread: int = 1) -> None:
        self.w.free(thread, FREE_FN, addr)

    def tick(self, seconds: float) -> None:
        self.w.tick(int(seconds * 1e6))

    def feed(self, tree: CallTree) -> None:
        data = self.w.data
        self.reader.feed(data[self.fed:])
        self.fed = len(data)
        tree.update()


def figures(tree: CallTree, name: str, index: int) -> int:
    node = tree.find("main", name)
    return 0 if node is None else node.total[index]


def test_since_mark_counts_exactly_what_changed_after_it():
    p = Program()
    tree = CallTree(p.reader)
    kept = [p.alloc("warm", 1000) for _ in range(5)]  # the warm-up keeps 5000 B
    temp = p.alloc("churn", 700)
    p.tick(1)
    p.feed(tree)
    tree.set_metric(Metric.SINCE_MARK)
    # no mark yet: since the start
    assert figures(tree, "warm_up", MARK_BYTES) == 5000
    mark = tree.set_mark()
    assert (mark.heap_bytes, mark.heap_allocations) == (5700, 6)
    p.feed(tree)
    # nothing changed since the mark: the tree shows nothing
    assert tree.children(tree.root) == [] and tree.root.total[MARK_BYTES] == 0
    for i in range(4):  # after the mark: 4 leaks of 4096 B, the churn block freed
        p.alloc("leak", 4096, thread=1 + i % 2)
    p.free(temp)
    p.free(kept[0])
    p.tick(2)
    p.feed(tree)
    assert (figures(tree, "handle", MARK_BYTES), figures(tree, "handle", MARK_COUNT)) == (
        4 * 4096, 4)
    assert (figures(tree, "cache", MARK_BYTES), figures(tree, "cache", MARK_COUNT)) == (-700, -1)
    assert figures(tree, "warm_up", MARK_BYTES) == -1000
    whole = tree.whole_counters()
    assert (whole[MARK_BYTES], whole[MARK_COUNT]) == (4 * 4096 - 1700, 4 - 2)
    assert tree.root.total[MARK_BYTES] == whole[MARK_BYTES]
    # largest growth first, shrinking last
    assert [c.frame.function for c in tree.children(tree.find("main"))] == [
        "handle", "cache", "warm_up"]
    # the same after a rebuild (a thread pick): thread 2 made 2 of the leaks
    tree.set_thread(2)
    assert figures(tree, "handle", MARK_BYTES) == 2 * 4096
    tree.set_thread(None)
    assert figures(tree, "handle", MARK_BYTES) == 4 * 4096
    # b again moves the mark; B clears it (since the start again)
    tree.set_mark()
    p.alloc("leak", 10)
    p.feed(tree)
    assert figures(tree, "handle", MARK_BYTES) == 10
    tree.clear_mark()
    p.feed(tree)
    assert figures(tree, "handle", MARK_BYTES) == 4 * 4096 + 10


def test_growth_is_the_change_over_the_sliding_window():
    p = Program()
    tree = CallTree(p.reader)
    tree.set_window(4)
    tree.set_metric(Metric.GROWTH)
    for second in range(1, 13):  # 8 KiB a second through handle, from the start
        p.alloc("leak", 8192)
        if second <= 6:
            p.alloc("warm", 1000)
        p.tick(second)
        p.feed(tree)
    # the window's start is the newest snapshot at or before 12 s - 4 s
    start = tree.growth_from
    assert start is not None and 7_000_000 <= start.t_us <= 8_000_000
    span = (12_000_000 - start.t_us) / 1e6
    grown = round(span) * 8192
    assert (figures(tree, "handle", GROWTH_BYTES), figures(tree, "handle", GROWTH_COUNT)) == (
        grown, round(span))
    shown = [c.frame.function for c in tree.children(tree.find("main"))]
    assert shown == ["handle"]  # warm-up stopped growing at 6 s
    assert abs(tree.rate(figures(tree, "handle", GROWTH_BYTES)) - 8192) < 1e-6
    assert tree.whole_counters()[GROWTH_BYTES] == grown
    assert format_rate(tree.rate(grown)) == "+8.0 KiB/s"
    assert format_signed(-700) == "-700 B" and format_signed(0) == "±0 B"
