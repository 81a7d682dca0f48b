"""Replace a file so that readers see the old version or the new one, never a mix: write a
temporary file beside it, flush it to disk, give it the old file's mode, rename it over."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from io import BufferedWriter


@contextmanager
def atomic_replace(path: str, prefix: str = ".memtrace-",
                   durable: bool = True) -> Iterator[BufferedWriter]:
    """Yield a binary file to write the new content to; it replaces `path` on success and is
    removed on any failure. durable=False skips the flush to disk (a cache: never torn,
    but losing the newest entries in a power cut costs only time)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create_temporary(directory, prefix)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            if durable:
                os.fsync(out.fileno())
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        except FileNotFoundError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _create_temporary(directory: str, prefix: str) -> tuple[int, str]:
    """A new file of our own beside the target (mode 0600, as mkstemp makes it): `tempfile`
    would bring shutil, bz2, lzma and random into the exit-time naming of every
    `run --native` (issue 14)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    while True:
        tmp = os.path.join(directory, f"{prefix}{os.urandom(6).hex()}")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
