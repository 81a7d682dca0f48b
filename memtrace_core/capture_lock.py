"""Who is still writing a capture: every writer (`run`'s tracer, `live -o`'s tee, `attach
-o`'s copier) holds an exclusive flock on the file while it writes; a follower (`view
--follow`, `top --follow`) tests it to tell "no new bytes yet" from "the writer is gone".
Tiny and dependency-free: the traced process imports it before tracing starts."""

from __future__ import annotations

import fcntl


def take_writer_lock(fd: int) -> None:
    """Mark fd's file as being written (released when the writer closes it or dies)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass  # another writer, or a file system without locks: followers rely on data


def writer_alive(fd: int) -> bool:
    """Somebody holds the writer lock on fd's file."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False
