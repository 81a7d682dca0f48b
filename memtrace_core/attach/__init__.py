"""Attach to a running CPython process (`memtrace attach PID`, `memtrace live --attach PID`).

How it works, and why:
- target.py checks the process from /proc before anything touches it: it exists, is a CPython
  of memtrace's own version and ABI (3.10 to 3.13 - the extensions are built per
  version, so memtrace must be installed for the target's X.Y), ptrace is allowed.
- channel.py makes a private FIFO in a fresh 0700 directory; our read end is opened first,
  non-blocking, so neither side can wait forever for the other.
- injector.py (the default) injects with memtrace's own ptrace code (ptrace/remote.c):
  image.py finds dlopen/dlsym and a `syscall` instruction in the target's C library before
  anything stops; one thread is seized (PTRACE_SEIZE + PTRACE_INTERRUPT, no SIGSTOP), judged
  from its unwound stack by safepoint.py (never inside the allocator, the loader or an
  unwinder), its registers and whole XSAVE state saved; a remote mmap gives a trampoline and a
  private stack; dlopen(helper), dlsym, spawn(job); everything restored (an interrupted
  syscall restarts; signals that arrived are re-raised once), detach. The thread is held for
  a few milliseconds.
- inject.py runs `gdb -p PID -batch -nx` with gdb_inject.py instead (`--method gdb`), and
  refuses a gdb older than 14 on a CPU whose XSAVE area it cannot restore (AMX).
- The helper thread takes the GIL the ordinary way (PyGILState_Ensure): the interpreter hands
  it over at a safe point, also when every Python thread sleeps in a syscall with the GIL
  released - the case where a pending call would wait for the program to wake up. The
  interrupted syscall of the target is restarted by the kernel; nothing is cut short.
- trust.py checks every file the target will load from memtrace, and the directories above
  them, against other users' write access, and copies them into the channel directory.
- agent.py runs in that thread, imported from that checked copy only (the target's
  environment needs no memtrace, and no sys.path entry is searched): it opens the FIFO,
  starts the tracer with an `attached` header, names the existing threads, and reports
  through a status file. It first says that it runs (a marker file): past the time limit,
  memtrace waits a while longer for an agent that has started, and an agent that finds the
  channel gone does nothing. It writes no bytecode cache into the copy.
- Detach is the same injection running the tracer's stop (trailer, hooks restored, writer
  thread joined, fd closed). If memtrace dies instead, the tracer sees EPIPE and unhooks.

Importing this package must stay cheap: the agent imports it inside the target.
"""
