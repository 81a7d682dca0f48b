"""Call-tree model: exact own/total numbers, incremental == rebuilt, filters, stable nodes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.model import CallTree, Metric
from memtrace_core.model.metrics import (
    ALLOC_BYTES,
    ALLOC_COUNT,
    LIVE_BYTES,
    LIVE_COUNT,
    PEAK_BYTES,
    format_bytes,
)
from memtrace_core.symbols.hybrid import A_PENDING
from tests.model.fake_reader import FakeReader

MAIN = ("main", "app.py", 10)
LOAD = ("load", "app.py", 20)
PARSE = ("parse", "app.py", 30)
BUILD = ("build", "app.py", 40)


def scenario() -> FakeReader:
    r = FakeReader()
    r.alloc(1, 100, [MAIN, LOAD])
    r.alloc(2, 300, [MAIN, LOAD, PARSE])
    r.alloc(3, 50, [MAIN, BUILD])
    r.alloc(4, 1000, [MAIN, BUILD])
    r.free(4)  # peak was 1450, in use now 450
    return r


def snapshot(tree: CallTree) -> dict:
    """Every node's (path of functions) -> (own, total) for comparisons."""
    out = {}
    stack = [((), tree.root)]
    while stack:
        names, node = stack.pop()
        if names:
            out[names] = (tuple(node.own), tuple(node.total))
        for child in node.children.values():
            stack.append((names + ((child.frame.function, child.frame.line),), child))
    return out


def test_own_and_total_exact_per_metric():
    tree = CallTree(scenario())
    tree.rebuild()
    main = tree.find("main")
    load = tree.find("main", "load")
    parse = tree.find("main", "load", "parse")
    build = tree.find("main", "build")
    assert main.total[LIVE_BYTES] == 450 and main.own[LIVE_BYTES] == 0
    assert load.own[LIVE_BYTES] == 100 and load.total[LIVE_BYTES] == 400
    assert parse.own[LIVE_BYTES] == 300 and parse.total[LIVE_COUNT] == 1
    assert build.total[LIVE_BYTES] == 50 and build.total[ALLOC_BYTES] == 1050
    assert build.total[ALLOC_COUNT] == 2 and build.total[PEAK_BYTES] == 1050
    assert tree.root.total[PEAK_BYTES] == 1450 == tree.reader.peak_bytes
    assert tree.root.total[LIVE_BYTES] == 450 == tree.reader.heap_bytes


def test_metric_switch_reorders_children():
    tree = CallTree(scenario())
    tree.rebuild()
    main = tree.find("main")
    assert [c.frame.function for c in tree.children(main)] == ["load", "build"]
    tree.set_metric(Metric.PEAK)
    assert [c.frame.function for c in tree.children(main)] == ["build", "load"]
    tree.set_metric(Metric.TOTAL)
    assert [c.frame.function for c in tree.children(main)] == ["build", "load"]
    tree.set_metric(Metric.COUNT)  # load: 2 allocations, build: 2 -> tie broken by name
    assert [c.frame.function for c in tree.children(main)] == ["build", "load"]
    assert Metric.COUNT.next() is Metric.TEMPORARY and Metric.TEMPORARY.next() is Metric.GROWTH
    assert Metric.SINCE_MARK.next() is Metric.IN_USE  # the cycle wraps
    assert Metric.AT_CURSOR.next() is Metric.IN_USE  # the timeline's metric is not in it


def test_incremental_update_keeps_nodes_and_costs_changed_only():
    r = scenario()
    tree = CallTree(r)
    tree.rebuild()
    load = tree.find("main", "load")
    r.alloc(10, 7, [MAIN, LOAD])
    changed = r._changed.copy()
    assert len(changed) == 1
    assert tree.update() is True
    assert tree.find("main", "load") is load
    assert load.own[LIVE_BYTES] == 107
    assert tree.update() is False  # nothing new


def test_thread_filter_numbers_are_the_threads_own():
    r = scenario()
    r.threads[2] = (101, "worker")
    r.alloc(20, 5000, [MAIN, LOAD], thread=2)
    tree = CallTree(r)
    tree.rebuild()
    assert tree.find("main", "load").total[LIVE_BYTES] == 5400
    tree.set_thread(2)
    assert tree.find("main", "load").total[LIVE_BYTES] == 5000
    assert tree.find("main", "build") is None
    assert tree.root.total[LIVE_BYTES] == 5000
    r.alloc(21, 1, [MAIN, BUILD])  # main thread: must not show
    r.alloc(22, 2, [MAIN, BUILD], thread=2)
    tree.update()
    assert tree.find("main", "build").total[LIVE_BYTES] == 2
    tree.set_thread(1)
    assert tree.root.total[LIVE_BYTES] == 451
    tree.set_thread(None)
    assert tree.root.total[LIVE_BYTES] == 5453
    assert tree.thread_totals()[2][LIVE_BYTES] == 5002


def test_substring_filter_keeps_matching_stacks():
    tree = CallTree(scenario())
    tree.set_filter("PARSE")
    assert tree.root.total[LIVE_BYTES] == 300
    assert tree.find("main", "build") is None
    tree.set_filter("app.py")
    assert tree.root.total[LIVE_BYTES] == 450
    tree.set_filter("nothing-like-this")
    assert tree.root.children == {}


def test_internal_frames_hidden_by_default():
    r = FakeReader()
    runpy = ("_run_code", "/usr/lib/python3.11/runpy.py", 86)
    boot = ("_call_with_frames_removed", "<frozen importlib._bootstrap>", 241)
    r.alloc(1, 64, [runpy, MAIN, boot, LOAD])
    tree = CallTree(r)
    tree.rebuild()
    assert tree.find("main", "load").own[LIVE_BYTES] == 64
    tree.set_show_internal(True)
    assert tree.find("main") is None
    assert tree.find("_run_code", "main", "_call_with_frames_removed", "load") is not None


def test_top_locations_count_recursion_once():
    r = FakeReader()
    rec = ("walk", "tree.py", 5)
    r.alloc(1, 10, [MAIN, rec, rec, rec])
    r.alloc(2, 20, [MAIN, rec])
    r.alloc(3, 5, [MAIN])
    tree = CallTree(r)
    tree.rebuild()
    rows = {loc.frame.function: loc for loc in tree.top_locations("total")}
    assert rows["walk"].total[LIVE_BYTES] == 30 and rows["walk"].own[LIVE_BYTES] == 30
    assert rows["main"].total[LIVE_BYTES] == 35 and rows["main"].own[LIVE_BYTES] == 5
    assert [loc.frame.function for loc in tree.top_locations("own")] == ["walk", "main"]
    assert [loc.frame.function for loc in tree.top_locations("total")] == ["main", "walk"]
    assert tree.find("main", "walk", "walk", "walk").own[LIVE_BYTES] == 10


def test_hottest_path():
    tree = CallTree(scenario())
    tree.rebuild()
    path = tree.hottest_path(tree.root)
    assert [n.frame.function for n in path] == ["main", "load", "parse"]


class FakeNamer:
    """The namer protocol with names that 'arrive' when the test says so."""

    def __init__(self):
        self.arrived: dict[int, list[Frame]] = {}
        self.asked: list[int] = []

    def classify(self, ips):
        self.asked += ips
        return [(A_PENDING, [Frame(f"libx.so+{ip - 1:#x}", "", 0, FrameKind.UNRESOLVED,
                                   "libx.so")]) for ip in ips]

    def poll(self):
        out, self.arrived = self.arrived, {}
        return out

    def pending(self):
        return len(self.asked)

    def close(self):
        pass


def native_reader() -> FakeReader:
    r = FakeReader()
    r.alloc(1, 640, [])  # a C thread's allocation: no Python frame
    sid = r._stacks[(0, 0, 1)]
    r._keys[sid] = (0, 7, 1)  # pretend the stack has a native part
    r.native_stack = lambda node: [0x1234, 0x1000] if node == 7 else []
    return r


def test_native_names_replace_unresolved_in_place():
    r = native_reader()
    namer = FakeNamer()
    tree = CallTree(r, namer, native=True)
    tree.rebuild()
    assert sorted(namer.asked) == [0x1000, 0x1234]
    old = tree.find("libx.so+0xfff", "libx.so+0x1233")
    assert old is not None and old.frame.kind is FrameKind.UNRESOLVED
    namer.arrived = {ip: [Frame(name, "lib.c", 7, FrameKind.NATIVE, "libx.so")]
                     for ip, name in ((0x1000, "outer_c"), (0x1234, "leaky_c"))}
    assert tree.update()
    new = tree.find("outer_c", "leaky_c")
    assert new.own[LIVE_BYTES] == 640 and new.frame.kind is FrameKind.NATIVE
    assert not old.alive and tree.resolve(old) is new
    assert tree.root.total[LIVE_BYTES] == 640
    assert tree.find("libx.so+0xfff") is None
    assert tree.pending_names() == 2  # the namer's count (this fake never lowers it)


def test_state_kept_by_path_across_rebuilds():
    r = scenario()
    r.threads[2] = (101, "worker")
    r.alloc(20, 5000, [MAIN, LOAD, PARSE], thread=2)
    tree = CallTree(r)
    tree.rebuild()
    parse = tree.find("main", "load", "parse")
    tree.set_thread(2)
    assert not parse.alive
    again = tree.resolve(parse)
    assert again.alive and again.key() == parse.key() and again.id != parse.id
    assert again.total[LIVE_BYTES] == 5000
    tree.set_filter("build")  # parse is gone: the nearest ancestor kept
    assert tree.resolve(parse) is tree.root
    tree.set_filter("")
    tree.set_thread(None)
    assert tree.resolve(parse).total[LIVE_BYTES] == 5300
    assert tree.node_at(parse.key()) is tree.resolve(parse)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["alloc", "free"]), st.integers(0, 12),
                          st.integers(1, 4000), st.sampled_from([0, 1, 2, 3]),
                          st.sampled_from([1, 2])), max_size=60),
       st.integers(1, 8))
def test_incremental_equals_rebuild(ops, every):
    stacks = [[MAIN], [MAIN, LOAD], [MAIN, LOAD, PARSE], [MAIN, BUILD, LOAD]]
    r = FakeReader()
    inc = CallTree(r)
    inc.rebuild()
    for i, (op, addr, size, which, thread) in enumerate(ops):
        if op == "alloc" and addr not in r._live:
            r.alloc(addr, size, stacks[which], thread)
        else:
            r.free(addr)
        if i % every == 0:
            inc.update()
    inc.update()
    changed_again = r._changed.copy()
    fresh = CallTree(r)
    fresh.set_growth_from(inc.growth_from)  # the same start of the growth window
    fresh.rebuild()
    assert not changed_again
    assert snapshot(inc) == snapshot(fresh)
    assert tuple(inc.root.total) == tuple(fresh.root.total)
    assert inc.root.total[LIVE_BYTES] == r.heap_bytes


def test_format_bytes():
    assert format_bytes(812) == "812 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * 1024 * 1024) == "3.0 MiB"


def test_heap_series_is_bounded_and_keeps_the_peak():
    from memtrace_core.model import session as session_mod

    r = FakeReader()
    s = session_mod.Session(r, CallTree(r))
    for i in range(10_000):
        r.history.append((i * 10_000, 1000 + (5_000_000 if i == 7777 else i), 0))
    assert s.heap_series(100) == ([], [])  # the chart shows what the tree holds
    s.tree.update()
    heap, _rss = s.heap_series(100)
    assert len(heap) == 100 and max(heap) == 5_001_000
    assert len(s._points) <= session_mod.HISTORY_POINTS
    r.history.append((100_010_000, 42, 0))  # absorbed incrementally
    s.tree.update()
    heap, _ = s.heap_series(100)
    assert s._points[-1] == (100_010_000, 42, 0) and max(heap) == 5_001_000


def test_chart_max_is_the_peak_between_ticks():
    from memtrace_core.model import session as session_mod

    r = FakeReader()
    s = session_mod.Session(r, CallTree(r))
    r.tick(1000)
    r.alloc(1, 7000, [MAIN])  # the peak falls between two ticks
    r.free(1)
    r.tick(2000)
    s.tree.update()
    heap, _ = s.heap_series(40)
    assert max(heap) == 7000 == s.summary().peak_bytes == s.tree.root.total[PEAK_BYTES]
