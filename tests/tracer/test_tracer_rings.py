"""Exact mode's per-thread rings (recorder.c, "per-thread event rings"): threads keep their
records in rings of their own, drained into the stream merged by number. Real threads (a C
library compiled here), real captures: a TICK never goes out while a record from before it
waits in a ring, and every thread's records reach the capture, whatever the thread did
after (waited, ended) and whenever tracing stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

from memtrace_core.reader import read_capture, read_capture_at
from tests.tracer.tracer_support import build_fixture

THREADS, COUNT, PHASES = 8, 600, 5

PHASED = f"""\
import ctypes, os, time
lib = ctypes.CDLL(os.environ["MT_PHASES_LIB"])
lib.mtp_phase.argtypes = [ctypes.c_long, ctypes.c_size_t]
assert lib.mtp_start({THREADS}) == 0
time.sleep(0.15)
for k in range(1, {PHASES} + 1):
    lib.mtp_phase({COUNT}, 1000 + k)
    time.sleep(0.15)  # nothing allocates: the writer's TICKs show the phase's end
lib.mtp_end()
print("done")
"""


@pytest.fixture(scope="module")
def phases_lib(tmp_path_factory) -> Path:
    return build_fixture(tmp_path_factory.mktemp("mtphases"), "mtphases")


def _worker_live(reader) -> tuple[int, int]:
    """(live bytes, live count) of the C threads' blocks: stacks with no Python frame."""
    nbytes = count = 0
    for sid in range(reader.n_stacks):
        pynode, _nat, _thread = reader.stack_key(sid)
        if pynode == 0:
            live_bytes, live_count = reader.stack_counters(sid)[2:4]
            nbytes += live_bytes
            count += live_count
    return nbytes, count


@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
def test_every_tick_after_a_phase_shows_all_of_it(tmp_path, mt, phases_lib, native):
    """8 threads allocate in 5 phases, each followed by 150 ms without an allocation. The
    TICK the writer writes after a phase comes once every record numbered before it is out
    of the rings: the threads' blocks in use at that TICK are exactly the phases' so far.
    Were a TICK written with records still waiting, no TICK would show a phase's total."""
    traced = mt.trace(tmp_path, PHASED, options=("--native",) if native else (),
                      timeout=300)
    assert traced.proc.returncode == 0, traced.proc.stderr.decode()
    assert traced.proc.stdout == b"done\n"
    wanted = []
    total = 0
    for k in range(1, PHASES + 1):
        total += THREADS * COUNT * (1000 + k)
        wanted.append((total, THREADS * COUNT * k))
    final = read_capture(traced.capture)
    assert final.implicit_frees == 0
    assert _worker_live(final) == wanted[-1]
    seen = []
    for t_us, _heap, _rss in final.history:
        at = read_capture_at(traced.capture, t_us)
        seen.append(_worker_live(at))
    assert seen == sorted(seen), "the threads only allocate: in use never goes down"
    missing = [w for w in wanted if w not in seen]
    assert not missing, f"no TICK shows these phases' totals: {missing}; TICKs: {seen}"


ENDED = """\
import ctypes, os, threading
lib = ctypes.CDLL(os.environ["MT_PHASES_LIB"])
lib.mtp_phase.argtypes = [ctypes.c_long, ctypes.c_size_t]
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
assert lib.mtp_start(4) == 0
lib.mtp_phase(300, 777)  # 4 threads keep 300 blocks each, then wait for mtp_end
lib.mtp_end()            # ... and end: their last records were in their rings
kept = []


def short_lived():
    kept.append(libc.malloc(333))


for _ in range(20):
    t = threading.Thread(target=short_lived)
    t.start()
    t.join()
print("done")
"""


def test_records_of_threads_that_ended_all_reach_the_capture(tmp_path, mt, phases_lib):
    """Threads end with records in their rings (4 C threads, 20 short-lived Python threads):
    the rings of ended threads are drained, then freed; nothing of theirs is lost."""
    traced = mt.trace(tmp_path, ENDED, timeout=300)
    assert traced.proc.returncode == 0, traced.proc.stderr.decode()
    reader = read_capture(traced.capture)
    assert _worker_live(reader) == (4 * 300 * 777, 4 * 300)
    blocks = [s for _a, s, _sid, _k in reader.live_allocations() if s == 333]
    assert len(blocks) == 20


@pytest.fixture(autouse=True)
def _library_env(mt, phases_lib, monkeypatch):
    monkeypatch.setitem(mt.env, "MT_PHASES_LIB", str(phases_lib))


# Programs that start the tracer themselves (no `memtrace run`), recording to argv[1].
IMPORTS = """\
import ctypes, os, sys, threading, time
from memtrace_core.tracer import _tracer
from memtrace_core.tracer.header import header_record

"""
START = """\
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
_tracer.start(fd, False, False, header_record({"format": _tracer.FORMAT_VERSION,
                                               "pid": os.getpid(), "argv": [],
                                               "native": False}))
# looked up after start: ctypes then gets the tracer's malloc and free (dlsym is hooked)
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
"""


AFTER_STOP = IMPORTS + """\
tasks = len(os.listdir("/proc/self/task"))  # before the tracer's writer thread
""" + START + """\
before = _tracer.ring_count()
go = threading.Event()
started, ready = threading.Barrier(21), threading.Barrier(21)


def worker():
    started.wait()  # every thread started and named: no rename sends records to the lock
    for _ in range(50):  # the first 64 records take the lock, the next ones the thread's ring
        libc.free(libc.malloc(100))
    ready.wait()
    go.wait()


threads = [threading.Thread(target=worker) for _ in range(20)]
for t in threads:
    t.start()
started.wait()
ready.wait()
during = _tracer.ring_count()
_tracer.stop(0)
os.close(fd)
go.set()
for t in threads:
    t.join()
# join() returns before a thread's C destructors have run: wait for the threads to be gone
deadline = time.monotonic() + 30
while len(os.listdir("/proc/self/task")) > tasks and time.monotonic() < deadline:
    time.sleep(0.01)
print(before, during, _tracer.ring_count())
"""


def test_threads_that_end_after_the_recording_leave_no_ring(tmp_path, mt):
    """After a stop (a detach), no drain comes to free the rings of threads that end: they
    go as each thread ends, and a program whose threads come and go keeps none of them."""
    (tmp_path / "prog.py").write_text(AFTER_STOP)
    proc = mt.plain("prog.py", str(tmp_path / "stop.mtrace"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    before, during, after = map(int, proc.stdout.split())
    assert during >= before + 20
    assert after == during - 20
    reader = read_capture(tmp_path / "stop.mtrace")
    assert reader.complete
    assert sum(1 for _a, s, _sid, _k in reader.live_allocations() if s == 100) == 0


FEW = IMPORTS + START + """\
counts = [_tracer.ring_count()]
kept = []


def worker(spec, done, go):
    n, _, bursts = spec.partition("x")  # "N": N blocks at once; "NxB": B bursts of N
    for b in range(int(bursts or 1)):
        if b:
            time.sleep(0.15)
        kept.extend(libc.malloc(100) for _ in range(int(n)))  # freed after the recording
    done.wait()
    go.wait()


go = threading.Event()
threads = []
for spec in sys.argv[2:]:  # one thread at a time, each alive when the rings are counted
    done = threading.Barrier(2)
    threads.append(threading.Thread(target=worker, args=(spec, done, go)))
    threads[-1].start()
    done.wait()
    counts.append(_tracer.ring_count())
go.set()
for t in threads:
    t.join()
_tracer.stop(0)
os.close(fd)
for p in kept:
    libc.free(p)
print(*counts)
"""


def test_only_threads_that_record_often_get_a_ring(tmp_path, mt):
    """A thread's records take the lock until 64 of them came within 100 ms: an idle pool's
    threads, which allocate a little now and then, keep no ring (40 KiB each, and a line
    for every drain to look at); a busy thread gets one; every record of every kind
    reaches the capture."""
    (tmp_path / "prog.py").write_text(FEW)
    proc = mt.plain("prog.py", str(tmp_path / "few.mtrace"), "10", "30", "40", "20x6", "200",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    counts = list(map(int, proc.stdout.split()))
    assert counts[1:5] == [counts[0]] * 4  # 10, 30, 40 at once, 120 over 0.75 s: no ring
    assert counts[5] == counts[0] + 1      # 200 at once: a ring
    reader = read_capture(tmp_path / "few.mtrace")
    assert reader.complete
    blocks = [s for _a, s, _sid, _k in reader.live_allocations() if s == 100]
    assert len(blocks) == 10 + 30 + 40 + 120 + 200


RELEASED = IMPORTS + START.replace("sys.argv[1]", "sys.argv[1] + '.1'") + """\
page = os.sysconf("SC_PAGE_SIZE")
rounds = [threading.Barrier(9) for _ in range(4)]
done = threading.Event()
kept = []


def worker():
    for r in range(2):  # one burst in each recording, each filling the thread's ring
        rounds[2 * r].wait()
        for i in range(700):
            p = libc.malloc(4321 if i < 10 else 100)
            if i < 10:
                kept.append(p)
            else:
                libc.free(p)
        rounds[2 * r + 1].wait()
    done.wait()  # alive until the end: a thread that ends takes its ring with it


threads = [threading.Thread(target=worker) for _ in range(8)]
for t in threads:
    t.start()
figures = []
for r in range(2):
    if r:
        fd = os.open(sys.argv[1] + ".2", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        _tracer.start(fd, False, False, header_record({"format": _tracer.FORMAT_VERSION,
                                                       "pid": os.getpid(), "argv": [],
                                                       "native": False}))
    rounds[2 * r].wait()
    rounds[2 * r + 1].wait()
    figures += [_tracer.ring_count(), _tracer.ring_resident_bytes(), _tracer.held_bytes()]
    _tracer.stop(0)
    os.close(fd)
    _tracer.release()  # as a detach does
    # the threads are alive, waiting
    figures += [_tracer.ring_resident_bytes(), _tracer.held_bytes()]
done.set()
for t in threads:
    t.join()
print(page, *figures)
"""


def test_a_stopped_recording_hands_back_its_memory(tmp_path, mt):
    """A detach leaves the rings of live threads in place (their threads point at them), but
    their record pages go back to the system: 8 threads that filled their rings hold one
    page each after the stop, not 60 KiB, and the recorder's buffers and interning tables
    (over 4 MiB) are gone; a second recording (a second attach) refills the same rings,
    loses nothing, and hands the memory back again."""
    (tmp_path / "prog.py").write_text(RELEASED)
    base = tmp_path / "rel.mtrace"
    proc = mt.plain("prog.py", str(base), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    page, *figures = map(int, proc.stdout.split())
    for rings, during, held, after, held_after in (figures[0:5], figures[5:10]):
        assert rings >= 8
        # full rings: 1,024 records of 40 bytes each; 7 at least in the first recording,
        # whose first ring may have packed its records while it was the only one
        assert during >= 7 * 1024 * 40
        assert after == rings * page    # the first page of each, the line its thread reads
        # buffers (2 MiB) and interning tables (2 MiB for the Python stacks' alone)
        assert held >= 4 << 20 and held_after == 0
    assert figures[5] == figures[0]     # the second recording reused the threads' rings
    for name in ("rel.mtrace.1", "rel.mtrace.2"):
        reader = read_capture(tmp_path / name)
        assert reader.complete
        assert sorted(s for _a, s, _sid, _k in reader.live_allocations() if s in (100, 4321)) \
            == [4321] * 80
        per_thread = [reader.stack_counters(sid)[:2] for sid in range(reader.n_stacks)]
        assert per_thread.count((10 * 4321 + 690 * 100, 700)) == 8  # each worker, whole
