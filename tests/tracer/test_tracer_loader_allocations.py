"""The dynamic loader's own allocations are traced: it calls malloc and free through private
pointers (no relocation names them), for dlopen's bookkeeping and for the TLS block of a
dlopen'ed library that each thread allocates at its first use. Ground truth: the block's
size is the library's PT_TLS segment, read from the file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tests.tracer import tracer_support as ts

TLS_SCRIPT = """\
import ctypes
import os
import threading
import time

lib = ctypes.CDLL(LIBRARY)
lib.mt_tls_touch.argtypes = [ctypes.c_int]


def in_thread():
    lib.mt_tls_touch(1)  # @thread


def main():
    lib.mt_tls_touch(2)  # @main
    tasks = len(os.listdir("/proc/self/task"))
    for _ in range(3):
        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()
        while len(os.listdir("/proc/self/task")) > tasks:  # gone: its stack can be reused
            time.sleep(0.001)


main()
print("tls done")
"""


@pytest.fixture(scope="module")
def tls_lib(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The library, and the size the loader allocates for its TLS block (PT_TLS p_memsz;
    an alignment above 16 would add to it, and mttls.c asks for 16)."""
    out = tmp_path_factory.mktemp("mttls") / "libmttls.so"
    source = Path(__file__).resolve().parents[1] / "cfixtures" / "mttls.c"
    proc = subprocess.run(["gcc", "-g", "-O1", "-fPIC", "-shared", "-Wall", str(source),
                           "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with open(out, "rb") as f:
        tls = [s for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_TLS"]
    assert len(tls) == 1 and tls[0]["p_align"] <= 16
    return out, tls[0]["p_memsz"]


@pytest.mark.parametrize("native", [False, True], ids=["plain", "native"])
def test_each_threads_tls_block_is_traced_exactly(tmp_path, mt, tls_lib, native):
    lib, block = tls_lib
    assert block >= 300007
    script = TLS_SCRIPT.replace("LIBRARY", repr(str(lib)))
    run = mt.trace(tmp_path, script, options=("--native",) if native else ()).check()
    assert run.proc.stdout == b"tls done\n"
    reader = run.reader
    main = ts.totals_at(reader, "main", run.lines["main"])
    threads = ts.totals_at(reader, "in_thread", run.lines["thread"])
    # One block per thread at its first use, nothing else on these lines.
    assert (main.count, main.bytes) == (1, block), main
    assert (threads.count, threads.bytes) == (3, 3 * block), threads
    # The main thread keeps its block to the end. A thread's block is freed when the next
    # thread takes its cached stack (glibc keeps the last one cached): those frees are
    # traced too, or all three would read as leaks.
    assert [s for _a, s, _k in ts.live_at(reader, "main", run.lines["main"])] == [block]
    assert threads.leaked_count <= 1 and threads.leaked_bytes == threads.leaked_count * block
