"""libunwind's system calls while memtrace unwinds (unwinder.h): an unwinding made step by
step blocks every signal once, and libunwind's own sigprocmask calls and checks of stack
addresses inside it are answered without a system call. A
real program whose library constructor allocates inside dlopen (so its stacks are unwound
step by step) while another thread sends it signals: the masking happened, every signal
still reached its handler, the program's own mask is what it set, and the blocks are all
recorded with the constructor's frames."""

from __future__ import annotations

import signal

import pytest

from tests.tracer import tracer_support as ts

SCRIPT = """\
import ctypes
import signal
import sys
import threading
import time

from memtrace_core.tracer import _tracer

caught = []
signal.signal(signal.SIGUSR1, lambda *_: caught.append(1))
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
main = threading.get_ident()
sent = 0
done = threading.Event()


def poke():
    global sent
    while not done.is_set():
        signal.pthread_kill(main, signal.SIGUSR1)
        sent += 1
        time.sleep(0.0005)


poker = threading.Thread(target=poke)
poker.start()
deadline = time.monotonic() + 10
while sent < 3 and time.monotonic() < deadline:  # the sender runs, however busy the box
    time.sleep(0.001)
before = _tracer.unwind_mask_counts()
lib = ctypes.CDLL(sys.argv[1])  # its constructor allocates 41 times inside dlopen
after = _tracer.unwind_mask_counts()
done.set()
poker.join()
deadline = time.monotonic() + 5
while (not caught or signal.sigpending()) and time.monotonic() < deadline:
    time.sleep(0.01)
during = len(caught)
signal.pthread_kill(main, signal.SIGUSR1)  # one more, once the unwinding is long over
time.sleep(0.05)
mask = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
pending = len(signal.sigpending())
print(*(a - b for a, b in zip(after, before)), sent, during, len(caught) - during, pending,
      *mask)
"""


@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
def test_step_by_step_unwinding_masks_signals_once_and_keeps_the_programs(mt, tmp_path,
                                                                            native):
    many = ts.build_fixture(tmp_path, "mtctormany")
    run = mt.trace(tmp_path, SCRIPT, str(many),
                   options=("--native",) if native else ()).check()
    blocks, answered, checked, sent, during, later, pending, *mask = map(
        int, run.proc.stdout.split())
    # the program's mask is the one it set; the signals sent while it loaded reached their
    # handler (those sent while one was pending merge with it, as without memtrace), none
    # is left pending, and one sent afterwards is caught
    assert mask == [int(signal.SIGUSR2)]
    assert sent > 0 and during > 0 and pending == 0 and later == 1, (sent, during, pending,
                                                                      later)
    if native:
        # each of the constructor's allocations was unwound step by step, masked once, and
        # libunwind's calls in it (a pair for each lock it took) cost no system call
        assert blocks >= 41, blocks
        assert answered >= 2 * blocks, (blocks, answered)
        assert checked > 0
    else:
        assert (blocks, answered, checked) == (0, 0, 0)
    sizes = sorted(size for _a, size, _sid, _k in run.reader.live_allocations()
                   if 70001 <= size <= 70100)
    assert sizes == [*range(70001, 70041), 70100]
    if native:
        for _addr, size, sid, _kind in run.reader.live_allocations():
            if size == 70100:
                names = ts.functions_on_stack(run.reader, run.reader.stack_key(sid)[1], many)
                assert names == ["ctor_leaf", "ctor_nested", "mt_ctor_many"]
