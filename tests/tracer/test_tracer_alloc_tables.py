"""Allocator pointers in data and from dlsym (issue 10): a library that keeps malloc/free in
statically initialised tables (R_X86_64_64 relocations, in writable data and in RELRO) is
traced exactly before and after it swaps its table; RELRO pages are read-only again after
patching; stopping restores only the slots that still hold a hook; ctypes.CDLL(None).malloc
(dlsym) is traced exactly."""

from __future__ import annotations

import subprocess

import pytest

from tests.tracer import tracer_support as ts

SCRIPT = """\
import ctypes
import os

lib = ctypes.CDLL(os.environ["MT_ALLOCTAB"])
lib.mt_tab_alloc.argtypes = [ctypes.c_int, ctypes.c_size_t]
lib.mt_tab_churn.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
lib.mt_tab_set.argtypes = [ctypes.c_int]
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]


def data_table():
    lib.mt_tab_alloc(0, 3_100_001)  # @data_keep
    lib.mt_tab_churn(0, 3_200_003, 5)  # @data_churn


def ro_table():
    lib.mt_tab_alloc(1, 3_300_007)  # @ro_keep
    lib.mt_tab_churn(1, 3_400_009, 7)  # @ro_churn


def swapped():
    lib.mt_tab_alloc(0, 3_500_011)  # @own_keep
    lib.mt_tab_churn(0, 3_600_013, 3)  # @own_churn


def from_dlsym():
    kept = libc.malloc(3_700_019)  # @dlsym_keep
    libc.free(libc.malloc(3_800_021))  # @dlsym_free
    return kept


data_table()
ro_table()
lib.mt_tab_set(1)
swapped()
lib.mt_tab_set(0)
data_table()
block = from_dlsym()
print("tables done")
"""

EXPECT = {  # marker: (function, count, bytes, leaked count, leaked bytes)
    "data_keep": ("data_table", 2, 2 * 3_100_001, 2, 2 * 3_100_001),
    "data_churn": ("data_table", 10, 10 * 3_200_003, 0, 0),
    "ro_keep": ("ro_table", 1, 3_300_007, 1, 3_300_007),
    "ro_churn": ("ro_table", 7, 7 * 3_400_009, 0, 0),
    "own_keep": ("swapped", 1, 3_500_011, 1, 3_500_011),
    "own_churn": ("swapped", 3, 3 * 3_600_013, 0, 0),
    "dlsym_keep": ("from_dlsym", 1, 3_700_019, 1, 3_700_019),
    "dlsym_free": ("from_dlsym", 1, 3_800_021, 0, 0),
}


def test_the_library_binds_its_tables_with_data_relocations(cbuild):
    relocs = subprocess.run(["readelf", "-rW", str(cbuild.mtalloctab)], capture_output=True,
                            text=True, check=True).stdout
    data = [row.split()[4] for row in relocs.splitlines() if "R_X86_64_64" in row]
    assert sorted(name.split("@")[0] for name in data) == ["free", "free", "malloc", "malloc"]


@pytest.mark.parametrize("native", [False, True], ids=["plain", "native"])
def test_tables_and_dlsym_exact(tmp_path, mt, native):
    options = ("--native",) if native else ()
    run = mt.trace(tmp_path, SCRIPT, options=options).check()
    assert run.proc.stdout == b"tables done\n"
    for marker, (function, *expect) in EXPECT.items():
        got = ts.totals_at(run.reader, function, run.lines[marker]).as_expect()
        assert got == ts.Expect(*expect), marker


STOP_SCRIPT = """\
import ctypes
import os
import sys

from memtrace_core.tracer import _tracer
from memtrace_core.tracer.header import header_record

lib = ctypes.CDLL(os.environ["MT_ALLOCTAB"])
lib.mt_tab_get.restype = ctypes.c_size_t
lib.mt_tab_get.argtypes = [ctypes.c_int, ctypes.c_int]
lib.mt_tab_alloc.argtypes = [ctypes.c_int, ctypes.c_size_t]


def table(which):
    return lib.mt_tab_get(which, 0), lib.mt_tab_get(which, 1)


def protection(address):
    with open("/proc/self/maps") as maps:
        for row in maps:
            span, perms = row.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if lo <= address < hi:
                return perms[:3]


real = table(1)  # untraced: the ro table holds malloc and free
lib.mt_tab_ro_address.restype = ctypes.c_size_t
ro_slot = lib.mt_tab_ro_address()
before = protection(ro_slot)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
_tracer.start(fd, False, False, header_record({"format": _tracer.FORMAT_VERSION,
                                               "pid": os.getpid(), "argv": [],
                                               "native": False}))
hooked = table(1)
during = protection(ro_slot)
lib.mt_tab_alloc(1, 3_900_023)
lib.mt_tab_set(1)  # the program puts its own allocator in while traced
own = table(0)
_tracer.stop(0)
os.close(fd)
print(hooked != real, table(1) == real, table(0) == own, lib.mt_tab_is_own(),
      before == during == protection(ro_slot) == "r--")
"""


def test_stop_restores_only_slots_that_still_hold_a_hook(tmp_path, mt):
    (tmp_path / "prog.py").write_text(STOP_SCRIPT)
    proc = mt.plain("prog.py", str(tmp_path / "stop.mtrace"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"True True True 1 True\n"
    from memtrace_core.reader import read_capture

    reader = read_capture(tmp_path / "stop.mtrace")
    assert reader.complete
    assert [s for _a, s, _sid, _k in reader.live_allocations() if s == 3_900_023] == [3_900_023]
