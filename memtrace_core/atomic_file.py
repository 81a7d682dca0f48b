"""Replace a file so that readers see the old version or the new one, never a mix: write a
temporary file beside it, flush it to disk, give it the old file's mode, rename it over."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO


@contextmanager
def atomic_replace(path: str, prefix: str = ".memtrace-",
                   durable: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file to write the new content to; it replaces `path` on success and is
    removed on any failure. durable=False skips the flush to disk (a cache: never torn,
    but losing the newest entries in a power cut costs only time)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory)
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
