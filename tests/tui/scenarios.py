"""Deterministic captures for Pilot and snapshot tests (exact, known numbers)."""

from __future__ import annotations

import os

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.model import CallTree, Session
from memtrace_core.reader import read_capture
from memtrace_core.symbols.hybrid import A_PENDING, address_flags
from memtrace_tui.app import MemtraceApp
from tests.streamgen import ProgramStream

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# Relative to the repository root (tests chdir there): real file, stable snapshot text.
APP = "tests/tui/sample_app.py"

MAIN = ("main", APP, 17)
LOAD = ("load_config", APP, 6)
PARSE = ("parse_rows", APP, 10)
BUILD = ("build_index", APP, 13)
WORK = ("worker_loop", APP, 21)
SMALL = ("many_small", APP, 17)
IN_USE = 4096 + 30_000 + 120_000 + 50 * 16 + 70_000 + 2_000


def write_sample(path) -> None:
    """main→load_config 4096, →parse_rows 30000; main→build_index 120000 (+500000 freed);
    main→many_small 50 x 16; thread 2 worker_loop 70000 and →parse_rows 2000."""
    w = ProgramStream(pid=4242, argv=("sample_app.py", "--rows", "1000"))
    w.thread(1, 4242, "MainThread")
    w.thread(2, 4250, "worker-1")
    w.tick(0)
    w.alloc(0x1000, 4096, [MAIN, LOAD])
    w.alloc(0x2000, 30_000, [MAIN, LOAD, PARSE])
    w.alloc(0x3000, 120_000, [MAIN, BUILD])
    for i in range(50):
        w.alloc(0x10000 + 16 * i, 16, [MAIN, SMALL])
    w.tick(100_000, rss=40 * 1024 * 1024)
    w.alloc(0x4000, 500_000, [MAIN, BUILD])
    w.tick(200_000, rss=44 * 1024 * 1024)
    w.free(0x4000)
    w.alloc(0x5000, 70_000, [WORK], thread=2)
    w.alloc(0x6000, 2_000, [WORK, PARSE], thread=2)
    w.tick(300_000, rss=48 * 1024 * 1024)
    w.trailer(0.3, 0)
    w.write(path)


def session_from(path) -> Session:
    reader = read_capture(path)
    tree = CallTree(reader)
    tree.rebuild()
    return Session(reader, tree)


def sync(fn):
    """Run an async Pilot test with asyncio (no async pytest plugin needed)."""
    import asyncio
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


class GivenNames:
    """The namer protocol (symbols.names.Namer) over names a test gives: known addresses
    are named at once, the others stay `module+0xoffset`, pending, until `arrive()`."""

    def __init__(self, names: dict[int, list[Frame]], modules: dict[int, str]) -> None:
        self.names = names  # return address -> frames
        self.modules = modules  # load base -> path
        self.waiting: set[int] = set()
        self._arrived: dict[int, list[Frame]] = {}

    def classify(self, ips):
        out = []
        for ip in ips:
            frames = self.names.get(ip)
            if frames is not None:
                out.append((address_flags(frames), frames))
                continue
            base = max(b for b in self.modules if b <= ip - 1)
            path = self.modules[base]
            self.waiting.add(ip)
            out.append((A_PENDING, [Frame(f"{os.path.basename(path)}+{ip - 1 - base:#x}", "",
                                          0, FrameKind.UNRESOLVED, path)]))
        return out

    def arrive(self, names: dict[int, list[Frame]]) -> None:
        self._arrived.update(names)
        self.waiting -= set(names)

    def poll(self):
        out, self._arrived = self._arrived, {}
        return out

    def pending(self) -> int:
        return len(self.waiting)

    def close(self) -> None:
        pass


def write_big(path, wide: int = 60, deep: int = 30) -> None:
    """main→worker_NN (NN = 0..wide-1, (NN+1)*1000 bytes each); main→level_1→…→level_deep
    (a chain `deep` frames long, 7 bytes at its end); thread 2 idle→parse_rows 500."""
    w = ProgramStream(pid=777, argv=("big_app.py",))
    w.thread(1, 777, "MainThread")
    w.thread(2, 778, "helper")
    w.tick(0)
    addr = 0x1000
    for i in range(wide):
        w.alloc(addr, (i + 1) * 1000, [MAIN, (f"worker_{i:02d}", APP, 100 + i)])
        addr += 0x100000
    chain = [MAIN] + [(f"level_{i}", APP, 200 + i) for i in range(1, deep + 1)]
    w.alloc(addr, 7, chain)
    w.alloc(addr + 0x1000, 500, [("idle", APP, 300), PARSE], thread=2)
    w.tick(100_000)
    w.trailer(0.1, 0)
    w.write(path)


def write_native(path) -> None:
    """Python, native, inlined and unresolved frames in one deterministic capture."""
    w = ProgramStream(pid=5151, argv=("native_app.py",), native=True)
    base = 0x7F0000000000
    w.maps([["/opt/demo/libdemo.so", base, "ab12", [[0, 0x10000, 5, 0]]],
            ["/usr/lib/libpython3.11.so.1.0", 0x7E0000000000, "cd34", [[0, 0x100000, 5, 0]]]])
    w.tick(0)
    main = ("main", APP, 17)
    # outermost first: the eval loop running main(), mt_middle, mt_leaf (+ inlined helper)
    w.alloc(0x1000, 5_000_011, [main], native=[0x7E0000000100, base + 0x1100, base + 0x1000])
    w.alloc(0x2000, 4096, [main], native=[0x7E0000000100, base + 0x3000])  # never named
    w.tick(50_000)
    w.trailer(0.05, 0)
    w.write(path)


LIB, PY = "/opt/demo/libdemo.so", "/usr/lib/libpython3.11.so.1.0"
MODULES = {0x7F0000000000: LIB, 0x7E0000000000: PY}


def native_names(base: int = 0x7F0000000000) -> dict[int, list[Frame]]:
    return {
        base + 0x1000: [Frame("make_buffer", "demo.c", 42, FrameKind.INLINE, LIB),
                        Frame("mt_leaf", "demo.c", 45, FrameKind.NATIVE, LIB)],
        base + 0x1100: [Frame("mt_middle", "demo.c", 52, FrameKind.NATIVE, LIB)],
        0x7E0000000100: [Frame("_PyEval_EvalFrameDefault", "ceval.c", 5000, FrameKind.NATIVE,
                               PY)],
    }


def native_app(tmp_path) -> MemtraceApp:
    path = tmp_path / "native.mtrace"
    write_native(path)
    reader = read_capture(path)
    namer = GivenNames(native_names(), MODULES)  # base + 0x3000 stays unnamed
    tree = CallTree(reader, namer)
    tree.rebuild()
    return MemtraceApp(Session(reader, tree))


def write_deep_native(path) -> tuple[dict[int, list[Frame]], dict[int, str]]:
    """A Python caller over 40 native frames of one library (C++ names, inlined helpers):
    the names the namer gives, and the modules."""
    w = ProgramStream(pid=6262, argv=("deep_native.py",), native=True)
    base = 0x7F0000000000
    w.maps([["/opt/demo/libdeep.so", base, "ef56", [[0, 0x100000, 5, 0]]],
            [PY, 0x7E0000000000, "cd34", [[0, 0x100000, 5, 0]]]])
    w.tick(0)
    depth = 40
    ips = [0x7E0000000100] + [base + 0x1000 + 0x40 * i for i in range(depth)]
    main = ("main", APP, 17)
    w.alloc(0x1000, 3 * 1024 * 1024, [main], native=ips)
    w.alloc(0x2000, 4096, [main], native=ips[:depth // 2])
    w.tick(10_000)
    w.trailer(0.01, 0)
    w.write(path)
    names = dict(native_names())
    for i in range(depth):
        frames = [Frame(f"deep::Walker<Node{i}>::visit_level_{i}", "src/walker.cpp", 100 + i,
                        FrameKind.NATIVE, "/opt/demo/libdeep.so")]
        if i % 5 == 4:
            frames.insert(0, Frame(f"deep::inline_step_{i}", "src/walker.h", 10 + i,
                                   FrameKind.INLINE, "/opt/demo/libdeep.so"))
        names[base + 0x1000 + 0x40 * i] = frames
    return names, {base: "/opt/demo/libdeep.so", 0x7E0000000000: PY}
