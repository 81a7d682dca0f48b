"""`--sample BYTES` against ground truth and exact mode, on real traced processes.

tests/cfixtures/mtsample.c allocates exactly known volumes from known Python lines (through
ctypes); the same deterministic program runs exact and sampled (MEMTRACE_SAMPLE_SEED fixed).
The estimator's spread is known in advance: a location with V bytes gets about V/mean
samples, so its relative error is about sqrt(mean/V). The accuracy runs use a mean that
puts ±10% at 4 standard deviations or more; the 512 KiB run uses volumes large enough for
the same margin.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from memtrace_core.reader import new_reader, read_capture, replay
from tests.cli import run_memtrace
from tests.streamgen import TICK
from tests.tracer.tracer_support import build_fixture

MB = 1 << 20
BLOCKS = [(48, 150), (200, 140), (1000, 130), (3000, 120), (8192, 110), (20000, 100),
          (65536, 90), (100000, 80), (250000, 70), (1000000, 60)]  # (block, MiB)
LEAK_BLOCK, LEAK_COUNT = 4096, 16384  # 64 MiB kept to the end
THREADS, THREAD_BLOCK, THREAD_COUNT = 8, 1000, 50000

ACCURACY = (
    """\
import ctypes, os
lib = ctypes.CDLL(os.environ["MT_SAMPLE_LIB"])
lib.mts_churn.argtypes = [ctypes.c_size_t, ctypes.c_long]
lib.mts_leak.argtypes = [ctypes.c_size_t, ctypes.c_long]
lib.mts_nothing.argtypes = [ctypes.c_long]
lib.mts_nothing.restype = ctypes.c_long
lib.mts_threads.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_long]


def work():
"""
    + "".join(f"    lib.mts_churn({b}, {mb} * {MB} // {b})  # @loc{i}\n"
              for i, (b, mb) in enumerate(BLOCKS))
    + f"""\
    lib.mts_leak({LEAK_BLOCK}, {LEAK_COUNT})  # @leak
    lib.mts_nothing(100000)  # @zero
    lib.mts_threads({THREADS}, {THREAD_BLOCK}, {THREAD_COUNT})  # @threads


work()
print("done")
"""
)

BIG = """\
import ctypes, os
lib = ctypes.CDLL(os.environ["MT_SAMPLE_LIB"])
lib.mts_churn.argtypes = [ctypes.c_size_t, ctypes.c_long]


def work():
    lib.mts_churn(65536, 32768)  # @big
    lib.mts_churn(64, 16 << 20)  # @small


work()
print("done")
"""


@pytest.fixture(scope="module")
def sample_lib(tmp_path_factory) -> Path:
    return build_fixture(tmp_path_factory.mktemp("mtsample"), "mtsample")


def _trace(mt, directory: Path, source: str, lib: Path, *options: str, seed: str = "7",
           preload: Path | None = None, extra_env: dict[str, str] | None = None):
    env = dict(mt.env, MT_SAMPLE_LIB=str(lib), MEMTRACE_SAMPLE_SEED=seed,
               PYTHONHASHSEED="0", **(extra_env or {}))
    if preload is not None:
        env["LD_PRELOAD"] = str(preload)
    script = directory / "prog.py"
    script.write_text(source)
    capture = directory / "prog.mtrace"
    proc = run_memtrace("run", *options, "-o", str(capture), "--force", "prog.py",
                        cwd=directory, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"done\n"
    return capture, mt.marker_lines(source)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mt, sample_lib):
    """The accuracy program exact and sampled every ~32 KiB (same seed)."""
    exact = _trace(mt, tmp_path_factory.mktemp("exact"), ACCURACY, sample_lib)
    sampled = _trace(mt, tmp_path_factory.mktemp("sampled"), ACCURACY, sample_lib,
                     "--sample", "32KiB")
    return {"exact": exact, "sampled": sampled}


def _by_line(stats: dict) -> dict[int, dict]:
    return {e["line"]: e for e in stats["top_locations"] if e["function"] == "work"}


def _stats(mt, capture: Path) -> dict:
    proc = mt.cli("stats", "--json", "--top", "0", str(capture), cwd=capture.parent)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def test_top_ten_locations_within_ten_percent_of_exact_mode(mt, runs):
    exact_capture, lines = runs["exact"]
    exact, sampled = _stats(mt, exact_capture), _stats(mt, runs["sampled"][0])
    assert exact["sampled"] == 0 and sampled["sampled"] == 32 << 10
    ex, sa = _by_line(exact), _by_line(sampled)
    for i, (block, mb) in enumerate(BLOCKS):
        line = lines[f"loc{i}"]
        truth = (mb * MB // block) * block
        # exact mode is the truth (ctypes itself allocates nothing per call here)
        assert ex[line]["bytes"] == truth and ex[line]["count"] == mb * MB // block
        for key in ("bytes", "count"):
            ratio = sa[line][key] / ex[line][key]
            assert 0.9 <= ratio <= 1.1, f"loc{i} ({block} B blocks) {key}: {ratio:.3f}"
    # they are the top ten by bytes in both modes (the leak and the threads aside)
    tops = [e["line"] for e in sampled["top_locations"] if e["function"] == "work"][:12]
    assert {lines[f"loc{i}"] for i in range(10)} <= set(tops)


def test_leak_of_64_mib_in_4_kib_blocks_within_ten_percent(mt, runs):
    exact_capture, lines = runs["exact"]
    ex = _by_line(_stats(mt, exact_capture))[lines["leak"]]
    sa = _by_line(_stats(mt, runs["sampled"][0]))[lines["leak"]]
    assert ex["leaked_bytes"] == LEAK_BLOCK * LEAK_COUNT == 64 * MB
    assert abs(sa["leaked_bytes"] / ex["leaked_bytes"] - 1) <= 0.1, sa
    assert abs(sa["leaked_count"] / LEAK_COUNT - 1) <= 0.1, sa
    # the reader's live blocks add up to its heap figure, estimate or not
    reader = read_capture(runs["sampled"][0])
    assert reader.heap_bytes == sum(size for _a, size, _s, _k in reader.live_allocations())


def test_no_location_appears_that_never_allocated(mt, runs):
    exact_capture, lines = runs["exact"]
    exact, sampled = _stats(mt, exact_capture), _stats(mt, runs["sampled"][0])
    assert lines["zero"] not in _by_line(exact)
    assert lines["zero"] not in _by_line(sampled)
    def key(e: dict) -> tuple[str, str, int]:
        return e["function"], Path(e["file"]).name, e["line"]  # the runs' folders differ

    everywhere = {key(e) for e in exact["top_locations"] if e["bytes"]}
    for e in sampled["top_locations"]:
        assert key(e) in everywhere, e


def test_threads_sample_on_their_own_and_add_up(runs):
    """8 pthreads churning at once (no Python stack): each draws its own distances, and
    their estimates add up to the truth."""
    exact, sampled = (read_capture(runs[k][0]) for k in ("exact", "sampled"))

    def c_threads(reader) -> tuple[int, int]:
        main = {sid for sid in range(reader.n_stacks)
                if reader.stack_key(sid)[0] != 0}  # C threads have no Python stack
        threads = {reader.stack_key(sid)[2] for sid in range(reader.n_stacks)} - {
            reader.stack_key(sid)[2] for sid in main}
        total = count = 0
        for sid in range(reader.n_stacks):
            if reader.stack_key(sid)[2] in threads:
                b, c, *_ = reader.stack_counters(sid)
                total += b
                count += c
        return total, len(threads)

    truth = THREADS * THREAD_BLOCK * THREAD_COUNT
    exact_bytes, n = c_threads(exact)
    assert n == THREADS and abs(exact_bytes - truth) < truth * 0.001
    sampled_bytes, n = c_threads(sampled)
    assert n == THREADS
    assert abs(sampled_bytes / truth - 1) <= 0.05


def test_sampled_capture_records_a_small_fraction(runs):
    exact, sampled = (read_capture(runs[k][0]) for k in ("exact", "sampled"))
    assert exact.sample_bytes == 0 and sampled.sample_bytes == 32 << 10
    # ~1.5 GB allocated: about 46,000 samples, and a FREE for those freed; exact mode
    # sends two records per malloc/free pair (4.6 M pairs)
    assert sampled.records * 40 < exact.records
    # every FREE sent was of a sampled address: only frees of blocks the reader knows
    assert sampled.ignored_frees <= exact.ignored_frees


def _tick_times(capture: Path) -> list[int]:
    """The TICK records' times (µs), decoded from the capture's plain stream."""
    import msgpack

    from memtrace_core.reader import capture_stream

    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
    unpacker.feed(b"".join(capture_stream(capture))[8:])  # after the magic
    return [rec[1] for rec in unpacker if isinstance(rec, list) and rec[0] == TICK]


def test_sampled_capture_without_native_stacks_has_no_maps(tmp_path, mt, runs, sample_lib):
    """The memory maps only name native frames: a sampled capture without --native sends
    none (not even after ctypes loads a library), a sampled --native one does, with the
    loaded library in them, as exact mode does."""
    exact, sampled = (read_capture(runs[k][0]) for k in ("exact", "sampled"))
    assert exact.maps_history and not sampled.maps_history and not sampled.maps
    native = read_capture(_trace(mt, tmp_path, BIG, sample_lib, "--sample", "512KiB",
                                 "--native", "--no-names")[0])
    assert native.maps_history
    assert any(Path(entry[0]).resolve() == sample_lib.resolve() for entry in native.maps)


TICKING = """\
import ctypes, os, time
lib = ctypes.CDLL(os.environ["MT_SAMPLE_LIB"])
lib.mts_churn.argtypes = [ctypes.c_size_t, ctypes.c_long]
start = time.monotonic()
while time.monotonic() - start < 1.2:  # samples flow for 1.2 s, however loaded the machine
    lib.mts_churn(4096, 256)
print("done")
"""


def test_sampled_capture_ticks_every_250_ms(tmp_path, mt, runs, sample_lib):
    """Sampled records are few: a TICK every 250 ms while they flow (exact mode: every
    10 ms), so ticks stay a small part of a sampled capture. The sampled program allocates
    for 1.2 s, so it has periodic ticks to check; the last TICK is the one written at the
    stop, whenever that comes."""
    exact = _tick_times(runs["exact"][0])
    sampled = _tick_times(_trace(mt, tmp_path, TICKING, sample_lib, "--sample", "32KiB")[0])
    assert len(exact) >= 2
    assert len(sampled) >= 4  # 3 periodic ones at least (the 4th may be the stop's)
    for times, period_us in ((exact, 10_000), (sampled[:-1], 250_000)):
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert all(gap >= period_us for gap in gaps), (period_us, sorted(gaps)[:5])
    assert sampled[-1] > sampled[-2]


def test_512_kib_mean_on_large_volumes(tmp_path, mt, sample_lib):
    """The production setting: 2 GiB of 64 KiB blocks and 1 GiB of 64-byte blocks (16 M
    malloc/free, of which only ~2,000 are recorded), each within ±10%."""
    capture, lines = _trace(mt, tmp_path, BIG, sample_lib, "--sample", "512KiB")
    stats = _stats(mt, capture)
    assert stats["sampled"] == 512 << 10
    got = _by_line(stats)
    for name, truth, count in (("big", 2 << 30, 32768), ("small", 1 << 30, 16 << 20)):
        assert abs(got[lines[name]]["bytes"] / truth - 1) <= 0.1, (name, got[lines[name]])
        assert abs(got[lines[name]]["count"] / count - 1) <= 0.1, (name, got[lines[name]])
    reader = read_capture(capture)
    # 16.8 M allocations and their frees became a few thousand records
    assert reader.records < 20000


def test_same_seed_same_samples(tmp_path, mt, sample_lib):
    """MEMTRACE_SAMPLE_SEED makes a deterministic program's samples reproducible."""

    def picks(name: str, seed: str) -> list[tuple[int, int, int]]:
        (tmp_path / name).mkdir()
        capture, _ = _trace(mt, tmp_path / name, BIG, sample_lib, "--sample", "512KiB",
                            seed=seed)
        return sorted((e["line"], e["bytes"], e["count"])
                      for e in _stats(mt, capture)["top_locations"] if e["function"] == "work")

    first = picks("a", "11")
    assert picks("b", "11") == first
    assert picks("c", "12") != first


PEAK = """\
import ctypes, os, time
lib = ctypes.CDLL(os.environ["MT_SAMPLE_LIB"])
lib.mts_churn.argtypes = [ctypes.c_size_t, ctypes.c_long]


def churn(seconds):  # samples flow, so ticks come every 250 ms
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        lib.mts_churn(4096, 256)


churn(0.6)
made = time.time()
block = bytearray(64 << 20)
churn(0.6)
freed = time.time()
del block
churn(0.3)
with open("times", "w") as f:
    f.write(f"{made} {freed}")
print("done")
"""


def test_sampled_peak_is_placed_between_two_ticks(tmp_path, mt, sample_lib):
    """A sampled capture's records carry no time, only its TICKs (every 250 ms) do: the
    peak is reported between the TICK before it and the one after, a window that holds the
    moment the program reached it, not as the earlier TICK's time alone."""
    capture, _lines = _trace(mt, tmp_path, PEAK, sample_lib, "--sample", "32KiB")
    start = read_capture(capture).header["start_time"]
    made, freed = (float(t) - start for t in (tmp_path / "times").read_text().split())
    stats = _stats(mt, capture)
    low, high = stats["peak_time_s"], stats["peak_by_s"]
    assert stats["peak_bytes"] >= 64 << 20
    # the peak came while the block was held: the window overlaps that spell ...
    assert low <= freed and high >= made, (low, high, made, freed)
    # ... and is one tick period wide, or a little more on a loaded machine
    assert 0.2 < high - low < 1.0, (low, high)
    text = mt.cli("stats", str(capture), cwd=tmp_path).stdout.decode()
    assert f"allocations between {low:.3f} s and {high:.3f} s" in text, text


def test_reports_say_the_figures_are_estimates(mt, runs):
    capture = runs["sampled"][0]
    stats = mt.cli("stats", str(capture), cwd=capture.parent)
    text = stats.stdout.decode()
    assert stats.returncode == 0
    assert "sampled every ~32 KiB" in text and "≈" in text
    for command in (("table",), ("tree",)):
        proc = mt.cli(*command, str(capture), cwd=capture.parent)
        assert proc.returncode == 0, proc.stderr.decode()
        out = " ".join(proc.stdout.decode().split())  # a title may wrap
        assert "≈" in out and "sampled every ~32 KiB" in out, out[:400]
        assert "every figure is an estimate" in proc.stderr.decode()
    for command in (("table", "--json"), ("tree", "--json")):
        proc = mt.cli(*command, str(capture), cwd=capture.parent)
        assert json.loads(proc.stdout)["sampled"] == 32 << 10
    exact = mt.cli("stats", str(runs["exact"][0]), cwd=capture.parent).stdout.decode()
    assert "≈" not in exact and "sampled" not in exact


@pytest.mark.parametrize("value", ["0", "-5", "12XB", "lots"])
def test_bad_sample_value_is_one_line(tmp_path, mt, value):
    (tmp_path / "p.py").write_text("print('hi')\n")
    proc = mt.cli("run", "--sample", value, "-o", "x.mtrace", "p.py", cwd=tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.decode().strip().splitlines()
    assert "Traceback" not in proc.stderr.decode()
    assert "--sample" in err[-1] and not (tmp_path / "x.mtrace").exists()


def test_native_sampled_run_names_the_c_function(tmp_path, mt, sample_lib):
    capture, _lines = _trace(mt, tmp_path, BIG, sample_lib, "--sample", "512KiB", "--native")
    stats = _stats(mt, capture)
    assert stats["sampled"] == 512 << 10 and stats["native"]
    functions = {e["function"]: e for e in stats["top_native_locations"]}
    assert "mts_churn" in functions
    ratio = functions["mts_churn"]["bytes"] / (3 << 30)
    assert abs(ratio - 1) <= 0.1
    assert not math.isnan(ratio)


DLCLOSE = """\
import _ctypes, ctypes, os
lib = ctypes.CDLL(os.environ["MT_SAMPLE_LIB"])
lib.mts_churn.argtypes = [ctypes.c_size_t, ctypes.c_long]
other = ctypes.CDLL(os.environ["MT_SAMPLE_LIB2"])  # a second object, unloaded mid-run
other.mts_churn.argtypes = [ctypes.c_size_t, ctypes.c_long]


def work():
    other.mts_churn(1 << 20, 64)  # @other
    _ctypes.dlclose(other._handle)
    lib.mts_churn(1 << 20, 64)  # @big


work()
print("done")
"""


def _objects_of(reader) -> tuple[set[str], set[str]]:
    """(paths of every object in the capture's maps snapshots, paths of the objects its
    native addresses lie in)."""
    from memtrace_core.symbols.modmap import HistoryMap

    history = HistoryMap()
    history.update(reader.maps_history)
    used = set()
    for ip in reader.native_ips():
        hit = history.lookup(ip - 1)
        if hit is not None:
            used.add(hit[0])
    return {entry[0] for snapshot in reader.maps_history for entry in snapshot}, used


def test_sampled_native_maps_hold_only_the_objects_of_its_stacks(tmp_path, mt, sample_lib):
    """Format 7: a sampled --native capture's maps hold the objects its native frames lie in
    and no other, with their executable segments only (exact mode sends every loaded object
    with every segment), and its names section still names every native frame."""
    from memtrace_core.reader import read_names
    from memtrace_core.symbols.modmap import HistoryMap

    capture, _lines = _trace(mt, tmp_path, BIG, sample_lib, "--sample", "512KiB", "--native")
    reader = read_capture(capture)
    assert reader.header["format"] >= 7 and not reader.error
    listed, used = _objects_of(reader)
    assert listed == used
    assert any(Path(path).resolve() == sample_lib.resolve() for path in used)
    pf_x = 1  # ELF: an executable segment
    segments = [seg for snap in reader.maps_history for entry in snap for seg in entry[3]]
    assert segments and all(seg[2] & pf_x for seg in segments)
    (tmp_path / "exact").mkdir()
    exact = read_capture(_trace(mt, tmp_path / "exact", BIG, sample_lib, "--native",
                                "--no-names")[0])
    exact_listed, exact_used = _objects_of(exact)
    assert exact_listed - exact_used  # exact mode lists objects no stack lies in
    assert any(not seg[2] & pf_x for entry in exact.maps for seg in entry[3])  # every segment
    assert len(listed) < len(exact_listed)
    names = read_names(capture)
    assert names is not None and names.warning is None
    history = HistoryMap()
    history.update(reader.maps_history)
    for ip in reader.native_ips():
        if ip >= 0xFFFFFFFF00000000:
            continue
        key = history.lookup(ip - 1)
        assert key is not None and names.get(*key), hex(ip)


def test_sampled_native_maps_take_back_an_unloaded_object(tmp_path, mt, sample_lib):
    """An object sent for a sampled stack and unloaded later leaves the maps (a MAPS_DELTA
    that removes it); a capture read whole names the frames in it from the history."""
    import shutil

    other = tmp_path / "libmtsample2.so"
    shutil.copy(sample_lib, other)
    capture, _lines = _trace(mt, tmp_path, DLCLOSE, sample_lib, "--sample", "512KiB",
                             "--native", "--no-names", extra_env={"MT_SAMPLE_LIB2": str(other)})
    reader = read_capture(capture)
    assert not reader.error
    listed, used = _objects_of(reader)
    assert listed == used
    was_there = [any(entry[0] == str(other) for entry in snap) for snap in reader.maps_history]
    assert any(was_there) and not was_there[-1]
    assert any(entry[0] == str(sample_lib) for entry in reader.maps)


CALLOC_REALLOC = """\
import ctypes, os
lib = ctypes.CDLL(os.environ["MT_SAMPLE_LIB"])
lib.mts_calloc_churn.argtypes = [ctypes.c_size_t, ctypes.c_size_t, ctypes.c_long]
lib.mts_realloc_churn.argtypes = [ctypes.c_size_t, ctypes.c_long, ctypes.c_long]


def work():
    lib.mts_calloc_churn(25, 100, 400000)  # @calloc
    lib.mts_realloc_churn(3000, 200000, 16000)  # @realloc


work()
print("done")
"""


def test_calloc_and_realloc_sampled_within_ten_percent(tmp_path, mt, sample_lib):
    """calloc and realloc have sampled hooks of their own with glibc's allocator (decided
    before the real call, passed straight on when not recorded): 1 GB from calloc, 0.6 GB
    from malloc moved by realloc to 1.2 GB more, 96 MB of the realloc'd blocks kept; every
    estimate within ±10% of the truth. A sampled block that realloc moves is sent as freed
    (else the next malloc at its address would find it live: an implicit free)."""
    capture, lines = _trace(mt, tmp_path, CALLOC_REALLOC, sample_lib, "--sample", "32KiB")
    assert read_capture(capture).implicit_frees == 0
    stats = _stats(mt, capture)
    got = _by_line(stats)
    calloc, realloc = got[lines["calloc"]], got[lines["realloc"]]
    for figure, truth in ((calloc["bytes"], 2500 * 400000), (calloc["count"], 400000),
                          (realloc["bytes"], (3000 + 16 + 6000) * 200000),
                          (realloc["leaked_bytes"], 6000 * 16000),
                          (realloc["leaked_count"], 16000),
                          (stats["allocators"]["calloc"]["bytes"], 2500 * 400000),
                          (stats["allocators"]["realloc"]["bytes"], 6000 * 200000)):
        assert abs(figure / truth - 1) <= 0.1, (figure, truth, calloc, realloc)
    assert not calloc["leaked_bytes"]


PYOBJECTS = """\
keep = []


def work():
    for i in range(300000):
        keep.append(("x" * (i % 300), {"i": i}, [i] * (i % 50)))  # @objects


work()
print("done")
"""


def test_python_allocators_sampled_like_exact(tmp_path, mt, sample_lib):
    """--trace-python-allocators: what pymalloc does inside a call that is not sampled (its
    arenas' mmap, the raw domain under it) is not recorded on its own either, as in exact
    mode; the objects' estimates match exact mode's figures."""
    (tmp_path / "e").mkdir()
    (tmp_path / "s").mkdir()
    capture, lines = _trace(mt, tmp_path / "e", PYOBJECTS, sample_lib,
                            "--trace-python-allocators")
    exact = _stats(mt, capture)
    sampled = _stats(mt, _trace(mt, tmp_path / "s", PYOBJECTS, sample_lib,
                                "--trace-python-allocators", "--sample", "16KiB")[0])
    assert set(sampled["allocators"]) <= set(exact["allocators"]), (
        sampled["allocators"], exact["allocators"])
    for key in ("total_allocated_bytes", "leaked_bytes"):
        assert abs(sampled[key] / exact[key] - 1) <= 0.1, (key, sampled[key], exact[key])
    objects = _by_line(exact)[lines["objects"]]
    got = _by_line(sampled)[lines["objects"]]
    assert abs(got["bytes"] / objects["bytes"] - 1) <= 0.1
    assert abs(got["count"] / objects["count"] - 1) <= 0.1


CHUNKY = """\
import ctypes, os
lib = ctypes.CDLL(os.environ["MT_SAMPLE_LIB"])
lib.mts_churn.argtypes = [ctypes.c_size_t, ctypes.c_long]


def work():
    lib.mts_churn(4096, 1 << 18)  # @work


work()
print("done")
"""


def test_another_allocators_own_mmaps_are_not_recorded(tmp_path, mt, sample_lib):
    """Sampling passes the calls it does not record straight to glibc's allocator, without
    the guard (glibc's malloc and free call nothing hooked inside). An allocator of another
    library keeps the guard: the chunks it maps and unmaps inside its malloc and free
    (through the PLT, hooked) are not recorded, sampled or not, and the estimates hold."""
    chunky = tmp_path / "libmtchunky.so"
    source = Path(__file__).resolve().parents[1] / "cfixtures" / "mtchunky.c"
    proc = subprocess.run(["gcc", "-g", "-O1", "-fPIC", "-shared", "-Wall", str(source),
                           "-o", str(chunky)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "e").mkdir()
    (tmp_path / "s").mkdir()
    capture, lines = _trace(mt, tmp_path / "e", CHUNKY, sample_lib, preload=chunky)
    exact = _stats(mt, capture)
    sampled = _stats(mt, _trace(mt, tmp_path / "s", CHUNKY, sample_lib, "--sample", "64KiB",
                                preload=chunky)[0])
    # 2 x 2^18 calls in work() alone: 512 chunks of 16 MiB (8 GiB) had they been recorded
    for stats in (exact, sampled):
        assert stats["allocators"].get("mmap", {}).get("bytes", 0) < 1 << 30, stats["allocators"]
    got, truth = _by_line(sampled)[lines["work"]], _by_line(exact)[lines["work"]]
    assert truth["bytes"] == 4096 << 18
    assert abs(got["bytes"] / truth["bytes"] - 1) <= 0.1, (got, truth)


PASS_AROUND = """\
import ctypes, os, sys
lib = ctypes.CDLL(os.environ["MT_SAMPLE_LIB"])
lib.mts_pass_around.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_long]
THREADS, ROUNDS = int(sys.argv[1]), int(sys.argv[2])


def work():
    assert lib.mts_pass_around(THREADS, 16, 4000, ROUNDS // THREADS) == 0  # @work


work()
print("done")
"""


def _c_side(reader) -> tuple[int, int, int, int]:
    """(bytes, count, live bytes, live count) of the C threads (stacks without a Python
    frame). The line that started them is left out: besides the first blocks, it allocates
    each new thread's TLS vector (the loader's calloc in pthread_create)."""
    total = [0, 0, 0, 0]
    for sid in range(reader.n_stacks):
        if reader.stack_key(sid)[0] == 0:
            for i, value in enumerate(reader.stack_counters(sid)[:4]):
                total[i] += value
    return tuple(total)


ONE_ARENA = {"MALLOC_ARENA_MAX": "1", "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}


@pytest.mark.parametrize("arenas", ["one", "per-thread"])
@pytest.mark.parametrize("mode", [(), ("--sample", "8KiB")], ids=["exact", "sampled"])
def test_frees_and_reuses_of_one_address_across_threads_stay_in_order(tmp_path, mt,
                                                                       sample_lib, mode,
                                                                       arenas):
    """8 threads free and reallocate the same addresses in turn. With one malloc arena and
    no per-thread cache a freed address goes straight to another thread's malloc; with an
    arena per thread (glibc's default) a thread frees blocks of other threads' arenas, whose
    addresses those threads then get back: each thread's records are of several lanes of
    addresses (recorder.c, "Lanes"), and one lane's are of several threads. A FREE that
    reached the reader after the next ALLOC of its address would show as an implicit free
    and then drop the new block; the figures must equal a single-threaded run's."""
    env = dict(mt.env, MT_SAMPLE_LIB=str(sample_lib), MEMTRACE_SAMPLE_SEED="5",
               **(ONE_ARENA if arenas == "one" else {}))
    script = tmp_path / "prog.py"
    script.write_text(PASS_AROUND)
    got = {}
    blocks = 160000 if mode else 1_600_000  # exact: long enough for dozens of TICKs
    for threads in ("8", "1"):
        capture = tmp_path / f"t{threads}.mtrace"
        proc = run_memtrace("run", *mode, "-o", str(capture), "prog.py", threads, str(blocks),
                            cwd=tmp_path, env=env, timeout=300)
        assert proc.returncode == 0 and proc.stdout == b"done\n", proc.stderr.decode()
        reader = read_capture(capture)
        assert reader.implicit_frees == 0, f"{threads} threads: an ALLOC of a live address"
        assert reader.heap_bytes == sum(s for _a, s, _sid, _k in reader.live_allocations())
        got[threads] = _c_side(reader)
        if not mode:  # the 16 blocks left, exactly
            live = [s for _a, s, sid, _k in reader.live_allocations() if s == 4000]
            assert len(live) == 16, f"{threads} threads: {len(live)} blocks of 4000 left"
            _check_every_tick(capture, int(threads))
    # blocks: the C threads' (16 more came first, from the work line)
    if not mode:  # exact: to the byte, whatever the threads did
        assert got["8"] == got["1"]
        nbytes, count, live_bytes, live_count = got["8"]
        assert blocks <= count < blocks + 100 and nbytes >= blocks * 4000
        assert (live_bytes, live_count) == (16 * 4000, 16)
    else:  # sampled: estimates, and nothing freed twice or out of order
        for nbytes, _count, live_bytes, live_count in got.values():
            assert abs(nbytes / (blocks * 4000) - 1) <= 0.1
            assert live_bytes >= 0 and live_count >= 0


def _check_every_tick(capture: Path, threads: int) -> None:
    """Once the 16 slots are filled, at every TICK each slot holds its block but for those
    whose thread is between the free and the malloc of its turn: 16 - threads to 16 blocks
    of 4000 bytes in use, never fewer, never more, and no implicit free so far (exact mode
    writes a TICK only once every record numbered before it is out of the threads' rings)."""
    seen = []

    def at_tick(reader) -> int:
        held = sum(1 for _a, size, _sid, _k in reader.live_allocations() if size == 4000)
        assert reader.implicit_frees == 0, f"{threads} threads, TICK at {reader.last_time_us}"
        seen.append(held)
        return reader.last_time_us + 1

    reader = new_reader()
    reader.stop_at(0)
    replay(capture, reader, at_tick)
    assert len(seen) >= 5, f"{threads} threads: only {len(seen)} TICKs"
    filled = [i for i, held in enumerate(seen) if held >= 16 - threads]
    assert filled, f"{threads} threads: no TICK while the slots were in use: {seen}"
    during = seen[filled[0]:]  # from then on, never fewer
    assert all(16 - threads <= held <= 16 for held in during), (threads, seen)


UNSEEN = """\
import ctypes, os
lib = ctypes.CDLL(os.environ["MT_SAMPLE_LIB"])
lib.mts_unseen_free.argtypes = [ctypes.c_size_t, ctypes.c_long]
lib.mts_unseen_free.restype = ctypes.c_long


def work():
    same = lib.mts_unseen_free(65536, 1000)  # @work
    with open("same.txt", "w") as f:
        f.write(str(same))


work()
print("done")
"""


def _records(capture: Path) -> list[list]:
    import msgpack

    from memtrace_core.reader import capture_stream

    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
    unpacker.feed(b"".join(capture_stream(capture))[8:])  # after the magic
    return list(unpacker)


@pytest.mark.parametrize("mode", [(), ("--sample", "1KiB")], ids=["exact", "sampled"])
def test_a_free_the_tracer_never_saw_is_an_implicit_free(tmp_path, mt, sample_lib, mode):
    """A 64 KiB block freed where no hook sees it, and the next one glibc hands out at its
    address: the new ALLOC drops the old block (an implicit free), exact or sampled. At a
    1 KiB mean every 64 KiB block is sampled (weight 1), so the figures are exact either
    way, and the sampled capture names the block it replaces by ordinal (no address)."""
    capture, lines = _trace(mt, tmp_path, UNSEEN, sample_lib, *mode)
    same = int((tmp_path / "same.txt").read_text())
    assert same >= 900  # glibc's malloc gave the address back (almost) every time
    reader = read_capture(capture)
    assert reader.implicit_frees == same
    work = _by_line(_stats(mt, capture))[lines["work"]]
    assert (work["bytes"], work["count"]) == (2000 * 65536, 2000)
    assert (work["leaked_bytes"], work["leaked_count"]) == ((1000 - same) * 65536, 1000 - same)
    if mode:
        _check_ordinals(_records(capture), same)


def _check_ordinals(records: list[list], same: int) -> None:
    """A sampled capture's heap ALLOCs carry 0 or how far back the block they replace is;
    its heap FREEs how many sampled ALLOCs came after the one they free (docs/FORMAT.md)."""
    ALLOC, FREE, ALLOC_SAME, FREE_SAME, ALLOC_AGAIN = 4, 5, 10, 11, 15
    ordinal, replaced, alloc_allocator, free_allocator = 0, 0, 0, 0
    contexts: list[tuple] = []  # every full ALLOC record's, which ALLOC_AGAIN names
    for rec in records:
        kind = rec[0]
        if kind in (ALLOC, ALLOC_SAME, ALLOC_AGAIN):
            if kind == ALLOC:
                alloc_allocator = rec[2]
                contexts.append((rec[1], rec[2], rec[5], rec[6]))
            elif kind == ALLOC_AGAIN:
                alloc_allocator = contexts[rec[1]][1]
            field, size = (rec[-4:-2] if kind == ALLOC else rec[1:3] if kind == ALLOC_SAME
                           else rec[2:4])
            if alloc_allocator == 9:  # mmap: an address, as in exact mode
                continue
            assert 0 <= field <= ordinal
            replaced += field == 1 and size == 65536
            ordinal += 1
        elif kind in (FREE, FREE_SAME):
            if kind == FREE:
                free_allocator = rec[2]
            if free_allocator == 11:  # munmap: an address
                continue
            field = rec[3] if kind == FREE else rec[1]
            assert 0 <= field < ordinal
    assert replaced == same
    # format 7: a context is sent in full once, then named by its number
    assert len(set(contexts)) == len(contexts)


TWO_LINES = """\
def work():
    for _ in range(200):
        a = bytearray(65535)  # @a
        b = bytearray(65535)  # @b


work()
print("done")
"""


def test_a_context_seen_before_is_named_by_its_number(tmp_path, mt, sample_lib):
    """Two lines allocating in turn (64 KiB blocks: always sampled at a 1 KiB mean, weight
    1): each line's context (thread, allocator, stacks) goes out in one full ALLOC record,
    and every later allocation of that line names it by number (ALLOC_AGAIN, format 7);
    the figures stay exact."""
    capture, lines = _trace(mt, tmp_path, TWO_LINES, sample_lib, "--sample", "1KiB")
    ALLOC, ALLOC_AGAIN = 4, 15
    records = _records(capture)
    contexts = [(r[1], r[2], r[5], r[6]) for r in records if r[0] == ALLOC]
    assert len(set(contexts)) == len(contexts)
    big_again = [r for r in records if r[0] == ALLOC_AGAIN and r[3] == 65536]
    assert len(big_again) >= 2 * 200 - 2  # all but each line's first
    by_line = _by_line(_stats(mt, capture))
    for name in ("a", "b"):
        row = by_line[lines[name]]
        assert (row["bytes"], row["count"]) == (200 * 65536, 200)


def test_sampled_capture_is_compressed_harder(tmp_path, mt):
    """A sampled stream comes slowly, so its capture searches harder for repeats than exact
    mode's zstd level 2 (writer.h, MT_CAPTURE_SAMPLED_*): numpy's benchmark, whose samples
    are random picks among a few allocations, comes out at least a quarter smaller than
    level 2 makes of the same stream cut into as many blocks; so does `attach --sample -o`'s
    copy of a stream (`live --sample -o` tees with the same writer flag)."""
    import zstandard

    from memtrace_core.reader import capture_stream
    from tests.capture.zstd_frames import frames

    # numpy comes with the bench extra (the whole suite's venv); the other Pythons' venvs
    # have the test extra only
    pytest.importorskip("numpy", reason="numpy is not installed (pip install -e .[bench])")
    capture = tmp_path / "numpy.mtrace"
    workload = Path(__file__).resolve().parents[2] / "benchmarks" / "workloads" / "numpy_work.py"
    proc = run_memtrace("run", "--sample", "512KiB", "-o", str(capture), str(workload),
                        cwd=tmp_path, env=dict(mt.env, MT_BENCH_SCALE="0.5",
                                               MEMTRACE_SAMPLE_SEED="3"), timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    (frame,) = frames(capture.read_bytes())
    stream = b"".join(capture_stream(capture))
    step = -(-len(stream) // len(frame.blocks))
    c = zstandard.ZstdCompressor(level=2).compressobj()
    level2 = sum(len(c.compress(stream[i:i + step]))
                 + len(c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
                 for i in range(0, len(stream), step)) + len(c.flush())
    assert frame.end - frame.start < 0.75 * level2, (frame.end - frame.start, level2)
    # `attach --sample -o` writes the same stream from a pipe: its copier compresses it as
    # hard, and both read back to the same stream
    copies = {sampled: _copy_through_pipe(stream, tmp_path / f"copy{sampled}.mtrace", sampled)
              for sampled in (False, True)}
    for copy in copies.values():
        assert b"".join(capture_stream(copy)) == stream
    sizes = {sampled: copy.stat().st_size for sampled, copy in copies.items()}
    assert sizes[True] < 0.75 * sizes[False], sizes


def _copy_through_pipe(stream: bytes, out: Path, sampled: bool) -> Path:
    """The stream through a real pipe into CaptureCopier (attach -o's) and a capture file."""
    import os
    import threading

    from memtrace_core.capture.copier import CaptureCopier

    read_fd, write_fd = os.pipe()
    out_fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    copier = CaptureCopier(read_fd, out_fd, sampled=sampled)
    copier.start()

    def feed() -> None:
        for i in range(0, len(stream), 4096):
            os.write(write_fd, stream[i:i + 4096])
        os.close(write_fd)

    writer = threading.Thread(target=feed)
    writer.start()
    writer.join(60)
    copier.join(60)
    assert copier.eof.is_set()
    os.close(out_fd)
    return out


KEPT_HOOKS = """\
import ctypes, os, sys

from memtrace_core.tracer import _tracer
from memtrace_core.tracer.header import header_record

MALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t)
FREE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def start(path, sample):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    _tracer.start(fd, False, False, header_record({
        "format": _tracer.FORMAT_VERSION, "pid": os.getpid(), "argv": [], "native": False,
        "sample_bytes": sample}), sample_bytes=sample, sample_seed=3)
    return fd


def looked_up():
    libc = ctypes.CDLL(None)  # a new handle: ctypes asks dlsym again
    return (ctypes.cast(libc.malloc, ctypes.c_void_p).value,
            ctypes.cast(libc.free, ctypes.c_void_p).value)


untraced = looked_up()
fd = start(sys.argv[1], 64 << 10)
sampled = looked_up()  # dlsym hands out this run's hooks: the sampled ones
_tracer.stop(0)
os.close(fd)
fd = start(sys.argv[2], 0)
exact = looked_up()
malloc, free = MALLOC(sampled[0]), FREE(sampled[1])
blocks = [malloc(1_000_003) for _ in range(100)]
for block in blocks[1:]:
    free(block)
_tracer.stop(0)
os.close(fd)
print(untraced != sampled != exact != untraced, looked_up() == untraced)
"""


def test_sampled_hooks_kept_across_runs_record_as_exact_mode(tmp_path, mt):
    """A program may keep the hooks dlsym handed out while sampling and call them in a later
    exact run of the same process (an exact attach after a sampled one): every allocation
    and free through them is recorded, as through the exact hooks."""
    (tmp_path / "prog.py").write_text(KEPT_HOOKS)
    proc = mt.plain("prog.py", "sampled.mtrace", "exact.mtrace", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"True True\n"  # three different pairs: the variants were handed out
    reader = read_capture(tmp_path / "exact.mtrace")
    assert reader.complete and reader.sample_bytes == 0
    sizes = [s for _a, s, _sid, _k in reader.live_allocations() if s == 1_000_003]
    assert sizes == [1_000_003], f"{len(sizes)} of the 100 blocks left, 1 expected"
    made = sum(reader.stack_counters(sid)[1] for sid in range(reader.n_stacks)
               if reader.stack_counters(sid)[0] % 1_000_003 == 0 and reader.stack_counters(sid)[0])
    assert made == 100
