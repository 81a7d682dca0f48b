"""`attach --sample`: a running program traced with sampling, then detached unharmed; an exact
attach to the same process afterwards is exact again (the sampler's state is per run)."""

from __future__ import annotations

import math

from memtrace_core.reader import read_capture
from tests.attach.attach_support import (
    C_BLOCK,
    PY_BLOCK,
    check_exact,
    live_by_function,
    memtrace,
    wait_tasks,
)

MEAN = 64 << 10


def estimate(size: int) -> int:
    return round(size / -math.expm1(-size / MEAN))


def test_sampled_attach_detach_unharmed_then_exact_again(start_target, tmp_path):
    target = start_target("--churn")  # a C thread mallocs and frees without end
    target.wait_line("leak 3 ")
    tasks = target.base_tasks()
    first = target.lines[-1].split()[4:6]
    before = target.last_leak()

    capture = tmp_path / "sampled.mtrace"
    proc = memtrace("attach", str(target.pid), "--sample", "64KiB", "-o", str(capture),
                    "--duration", "2")
    assert proc.returncode == 0, proc.stderr
    assert "detached from process" in proc.stderr
    assert wait_tasks(target, tasks) == tasks, "a thread of memtrace is left in the target"
    n = target.last_leak()
    target.wait_line(f"leak {n + 3} ")

    reader = read_capture(capture)
    assert reader.complete and reader.header["attached"] is True
    assert reader.sample_bytes == MEAN
    # A sampled capture names its heap blocks by ordinal, not address (docs/FORMAT.md): the
    # blocks live at the leaking functions are leaks of their size, at most one per leak
    # made while attached.
    live = live_by_function(reader)
    for function, size in (("leak_python", PY_BLOCK), ("leak_c", C_BLOCK)):
        got = live.get(function, {})
        assert got, f"{function}: nothing sampled in 2 s"
        assert len(got) <= n - before + 1, f"{function}: more leaks than the target made"
        assert {s for s, _ in got.values()} == {estimate(size)}
    # about one ALLOC and one FREE per ~64 KiB allocated: the churning thread's 64-byte
    # malloc/free pairs (a thousand per sample) sent nothing else
    assert reader.records < 3 * reader.total_allocated_bytes / MEAN + 5000
    assert reader.heap_bytes == sum(s for _a, s, _sid, _k in reader.live_allocations())

    exact = tmp_path / "exact.mtrace"
    proc = memtrace("attach", str(target.pid), "-o", str(exact), "--duration", "1.5")
    assert proc.returncode == 0, proc.stderr
    assert wait_tasks(target, tasks) == tasks
    target.wait_line(f"leak {target.last_leak() + 3} ")
    assert read_capture(exact).sample_bytes == 0
    check_exact(exact, target.lines, minimum=8)

    assert target.finish() == 0
    assert target.stderr() == ""
    seen = {tuple(line.split()[4:6]) for line in target.lines if line.startswith("leak ")}
    assert seen == {tuple(first)}, "thread count or __main__ globals changed by attach"
    last = [line for line in target.lines if line.startswith("leak ")][-1]
    assert last.endswith("boot=threading"), "thread-name wrapper left installed"
