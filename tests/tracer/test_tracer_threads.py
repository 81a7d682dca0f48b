"""8 Python threads and 8 C pthreads allocating at once: exact totals, names, no deadlock."""

from __future__ import annotations

import pytest

from tests.tracer import tracer_support as ts

THREADS_SCRIPT = """\
import threading

import mtext

start = threading.Barrier(8)


def worker(i):
    start.wait()
    mtext.churn(i)  # @churn


def main():
    threads = [
        threading.Thread(target=worker, args=(i,), name=f"pyworker-{i}") for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mtext.pthreads_test()  # @pthreads
    print("threads done")


main()
"""


@pytest.fixture(scope="module", params=["plain", "native"])
def threads_run(request, tmp_path_factory, mt):
    options = ("--native",) if request.param == "native" else ()
    directory = tmp_path_factory.mktemp(f"threads_{request.param}")
    return mt.trace(directory, THREADS_SCRIPT, options=options, timeout=45).check()


def test_python_threads_exact_totals(threads_run):
    assert threads_run.proc.stdout == b"threads done\n"
    got = ts.totals_at(threads_run.reader, "worker", threads_run.lines["churn"])
    assert got.as_expect() == ts.PY_THREADS


def test_python_threads_each_have_their_own_thread_index(threads_run):
    reader = threads_run.reader
    per_thread: dict[int, int] = {}
    for sid in ts.stacks_at(reader, "worker", threads_run.lines["churn"]):
        thread = ts.thread_of(reader, sid)
        per_thread[thread] = per_thread.get(thread, 0) + reader.stack_counters(sid)[1]
    assert sorted(per_thread.values()) == [ts.CHURN + 1] * 8
    assert all(thread in reader.threads for thread in per_thread)


def test_python_thread_names_recorded(threads_run):
    reader = threads_run.reader
    names = {
        reader.threads[ts.thread_of(reader, sid)][1]
        for sid in ts.stacks_at(reader, "worker", threads_run.lines["churn"])
    }
    assert names == {f"pyworker-{i}" for i in range(8)}, names


def test_c_pthreads_exact_totals_and_names(threads_run):
    reader = threads_run.reader
    named = {index: name for index, (_tid, name) in reader.threads.items()}
    c_threads = {index for index, name in named.items() if name.startswith("mtpth-")}
    assert sorted(named[i] for i in c_threads) == [f"mtpth-{i}" for i in range(8)], named
    assert ts.totals_of_threads(reader, c_threads).as_expect() == ts.C_THREADS
    os_tids = {reader.threads[i][0] for i in c_threads}
    assert len(os_tids) == 8 and 0 not in os_tids


def test_c_pthread_allocations_have_no_python_frames(threads_run):
    reader = threads_run.reader
    c_threads = {i for i, (_t, name) in reader.threads.items() if name.startswith("mtpth-")}
    for sid in range(reader.n_stacks):
        if ts.thread_of(reader, sid) in c_threads:
            assert ts.innermost(reader, sid) is None
