"""Thread names follow renames (issue 19): a Python thread renamed from Python and then with
prctl carries each name on the allocations made under it; C threads show the name they gave
themselves (before or after allocating), the one their creator gave them, or their kernel
name (not memtrace's)."""

from __future__ import annotations

import pytest

from tests.tracer import tracer_support as ts

SCRIPT = """\
import ctypes
import os
import threading

libc = ctypes.CDLL(None)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_ulong,
                       ctypes.c_ulong]
PR_SET_NAME = 15
kept = []


def work():
    kept.append(bytearray(1_000_000))  # @first
    threading.current_thread().name = "second-name"
    kept.append(bytearray(1_000_001))  # @second
    libc.prctl(PR_SET_NAME, b"third-name", 0, 0, 0)
    kept.append(bytearray(1_000_002))  # @third


def main():
    worker = threading.Thread(target=work, name="first-name")
    worker.start()
    worker.join()
    proc = ctypes.CDLL(os.environ["MT_PROC"])
    kernel_name = ctypes.create_string_buffer(16)
    assert proc.mt_thread_names(kernel_name) == 0
    print(kernel_name.value.decode())


main()
"""


@pytest.fixture(scope="module", params=["plain", "native"])
def names_run(request, tmp_path_factory, mt):
    options = ("--native",) if request.param == "native" else ()
    directory = tmp_path_factory.mktemp(f"names_{request.param}")
    return mt.trace(directory, SCRIPT, options=options).check()


def _names_by_size(reader) -> dict[int, tuple[int, str]]:
    """Size -> (OS thread id, thread name) of every live block."""
    return {size: reader.threads[ts.thread_of(reader, sid)]
            for _a, size, sid, _k in reader.live_allocations()}


def test_python_thread_renamed_twice(names_run):
    names = _names_by_size(names_run.reader)
    got = [names[1_000_001 + i] for i in range(3)]
    assert [name for _tid, name in got] == ["first-name", "second-name", "third-name"]
    assert len({tid for tid, _name in got}) == 1  # one thread, three names
    assert names_run.reader.threads[1][1] == "MainThread"


def test_c_threads_named_by_themselves_by_their_creator_or_the_kernel(names_run, mt):
    kernel_name = names_run.proc.stdout.decode().strip()
    untraced = mt.plain("-c", SCRIPT, cwd=names_run.script.parent)
    assert untraced.stdout.decode().strip() == kernel_name  # what the kernel calls it
    assert kernel_name and kernel_name != "memtrace"
    names = _names_by_size(names_run.reader)
    a_before, a_after = names[2_100_001], names[2_100_002]
    assert a_before[0] == a_after[0]
    assert (a_before[1], a_after[1]) == (kernel_name, "mtname-a")
    assert names[2_100_003][1] == kernel_name
    c_before, c_after = names[2_100_004], names[2_100_005]
    assert c_before[0] == c_after[0]
    assert (c_before[1], c_after[1]) == (kernel_name, "mtname-c")


def test_c_pthread_named_before_allocating_keeps_one_thread(names_run):
    """Renames do not multiply threads that never change name: the Python worker has its
    three names, every other thread one."""
    reader = names_run.reader
    by_tid: dict[int, set[str]] = {}
    for tid, name in reader.threads.values():
        by_tid.setdefault(tid, set()).add(name)
    counts = sorted(len(v) for v in by_tid.values())
    assert counts.count(3) == 1 and counts.count(2) == 2  # worker; threads a and c
    assert all(n == 1 for n in counts if n not in (2, 3))
