"""`run --native` names its capture at exit from the tracer's own tables, without reading
the stream back (issue 14: for 11 M allocations, reading it back cost 0.3 s of CPU and naming
0.02 s). The tables must say exactly what the stream says: the same addresses, and a maps
snapshot that names each of them as the stream's whole maps history does. When they cannot
(a library left the maps during the run), the stream is read, as before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from memtrace_core.reader import read_capture, read_names
from memtrace_core.symbols.modmap import HistoryMap, ModuleMap
from tests.cli import REPO

SUMMARY_SCRIPT = """\
import ctypes, json, os, sys
from memtrace_core.reader._reader import maps_snapshot
from memtrace_core.tracer import _tracer
from memtrace_core.tracer.header import header_record

fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
_tracer.start(fd, True, False, header_record({"format": _tracer.FORMAT_VERSION,
                                               "pid": os.getpid(), "argv": [],
                                               "native": True}), True)
lib = ctypes.CDLL(os.environ["MT_LIB"])  # loaded while recording: a MAPS_DELTA
lib.mt_lib_alloc.restype = None
lib.mt_lib_alloc()
if sys.argv[2] == "dlclose":
    import _ctypes

    dl2 = ctypes.CDLL(os.environ["MT_DL2"])
    dl2.mt2_alloc.restype = None
    dl2.mt2_alloc()
    handle = dl2._handle
    del dl2
    _ctypes.dlclose(handle)  # gone from the maps before the end
lib.mt_lib_alloc()
_tracer.stop(0)
os.close(fd)
summary = _tracer.native_summary()
print(json.dumps(None if summary is None else
                 {"ips": sorted(summary[0]), "maps": maps_snapshot(summary[1])}))
"""

CHURN_SCRIPT = """\
import ctypes, os, sys

# How naming at exit could read the capture back, seen by an audit hook: mapping it (the
# reader does), or reading it (/proc/self/io's rchar counts every byte this process reads
# from here on: imports, the symbol cache, the capture), noted when naming opens the capture
# to write its names.
def hook(event, args):
    if event == "mmap.__new__" and args[0] >= 0:
        try:
            if os.readlink(f"/proc/self/fd/{args[0]}") == CAPTURE:
                print("capture mapped:", args[1], file=sys.stderr)
        except OSError:
            pass
    elif event == "open" and args[0] == CAPTURE and isinstance(args[2], int) and args[2] & 3:
        with open("/proc/self/io") as io:
            rchar = int(next(l for l in io if l.startswith("rchar")).split()[1])
        print("read while naming:", rchar - START, file=sys.stderr)

CAPTURE = os.path.abspath(sys.argv[1])
lib = ctypes.CDLL(os.environ["MT_STORE"])
lib.mts_random.restype = ctypes.c_long
lib.mts_random.argtypes = [ctypes.c_long, ctypes.c_uint]
for seed in range(20):
    lib.mts_random(200_000, seed)
with open("/proc/self/io") as io:
    START = int(next(l for l in io if l.startswith("rchar")).split()[1])
sys.addaudithook(hook)
"""


def _summary(mt, tmp_path: Path, mode: str) -> tuple[dict | None, Path]:
    (tmp_path / "summary.py").write_text(SUMMARY_SCRIPT)
    capture = tmp_path / f"{mode}.mtrace"
    proc = mt.plain("summary.py", str(capture), mode, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout), capture


def test_tables_say_what_the_stream_says(mt, tmp_path):
    summary, capture = _summary(mt, tmp_path, "plain")
    assert summary is not None
    reader = read_capture(capture)
    assert reader.complete and reader.error is None
    assert set(summary["ips"]) == reader.native_ips()
    assert len(summary["ips"]) > 10
    # the last snapshot is the stream's last one (MAPS, then deltas that only added) ...
    assert sorted(summary["maps"], key=lambda m: m[1]) == sorted(reader.maps, key=lambda m: m[1])
    assert len(reader.maps_history) >= 2  # ... and the library came in a MAPS_DELTA
    history, last = HistoryMap(), ModuleMap(summary["maps"])
    history.update(reader.maps_history)
    looked = [(history.lookup(ip - 1), last.lookup(ip - 1)) for ip in summary["ips"]]
    assert all(a == b for a, b in looked)
    assert any(a and Path(a[0]).name == "libmtlib.so" for a, _ in looked)


def test_a_library_gone_from_the_maps_means_reading_the_stream(mt, tmp_path):
    summary, capture = _summary(mt, tmp_path, "dlclose")
    assert summary is None
    assert read_capture(capture).complete


DLCLOSE_RUN = """\
import _ctypes
import ctypes
import os

dl2 = ctypes.CDLL(os.environ["MT_DL2"])
dl2.mt2_alloc.restype = None
dl2.mt2_alloc()
handle = dl2._handle
del dl2
_ctypes.dlclose(handle)
"""


def test_run_names_frames_of_a_library_closed_before_the_end(mt, tmp_path, cbuild):
    """The last maps snapshot no longer has the library: its frames are named from the
    stream's maps history."""
    run = mt.trace(tmp_path, DLCLOSE_RUN, options=("--native",)).check()
    names = read_names(run.capture)
    assert names is not None and names.warning is None
    real = cbuild.mtdl2.resolve()
    functions = {f.function for (path, _bid, _vaddr), frames in names.frames.items()
                 if Path(path).resolve() == real for f in frames}
    assert "mt2_alloc" in functions


@pytest.fixture(scope="module")
def mtstore(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mtstore") / "libmtstore.so"
    subprocess.run(["gcc", "-g", "-O1", "-fPIC", "-shared", "-Wall", "-o", str(out),
                    str(REPO / "tests" / "cfixtures" / "mtstore.c")], check=True)
    return out


def test_exit_naming_does_not_read_the_capture_back(mt, tmp_path, mtstore):
    """4 M allocations make a capture of tens of MB; naming it at exit reads a small part
    of that (its imports and symbol cache), and its names are the ones read from the stream."""
    (tmp_path / "churn.py").write_text(CHURN_SCRIPT)
    capture = tmp_path / "churn.mtrace"
    proc = subprocess.run(
        [sys.executable, "-m", "memtrace_tui", "run", "--native", "-o", str(capture),
         "churn.py", str(capture)],
        cwd=tmp_path, env=dict(mt.env, MT_STORE=str(mtstore)), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr
    size = capture.stat().st_size
    assert size > 30_000_000
    read = [int(line.rsplit(" ", 1)[1]) for line in proc.stderr.splitlines()
            if line.startswith("read while naming:")]
    assert read and read[-1] < size // 4, (read, size)
    assert "capture mapped" not in proc.stderr
    named = read_names(capture)
    assert named is not None and named.warning is None
    assert any(f.function == "mts_random" for frames in named.frames.values() for f in frames)
    # the same names as naming from the stream (`symbolize` reads it)
    from_stream = tmp_path / "again.mtrace"
    from_stream.write_bytes(capture.read_bytes())
    assert mt.cli("symbolize", str(from_stream), cwd=tmp_path).returncode == 0
    assert read_names(from_stream).frames == named.frames
