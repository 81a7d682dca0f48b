# cython: language_level=3
"""Python face of the capture writer (writer.h): `live -o`, `attach -o` and a capture made
portable write capture files with the same C code as the tracer under `memtrace run`."""

import os

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memset

from memtrace_core.capture.writer cimport (
    MT_CAPTURE_BLOCK_BYTES, MT_CAPTURE_FLUSH_NS, MT_CAPTURE_JUDGE_BYTES, MT_CAPTURE_LEVEL,
    MT_CAPTURE_PROBE_BYTES, MT_CAPTURE_PROBE_MAX_BYTES, MT_CAPTURE_STORE_RATE,
    MT_CAPTURE_STORE_RATIO, mt_capture, mt_capture_finish, mt_capture_flush,
    mt_capture_flush_due, mt_capture_open, mt_capture_release, mt_capture_sampled,
    mt_capture_take_lock,
    mt_capture_write, mt_capture_writer_alive,
)

FLUSH_INTERVAL_S = MT_CAPTURE_FLUSH_NS / 1e9
"""What is written is readable from the file at most this long after (writer.h)."""
LEVEL = MT_CAPTURE_LEVEL
"""The zstd compression level of capture files."""
BLOCK_BYTES = MT_CAPTURE_BLOCK_BYTES
"""Stream bytes per zstd block (a compression choice: see writer.h)."""
STORE_RATIO = MT_CAPTURE_STORE_RATIO
"""A window of stream that shrank less than this, and came at least STORE_RATE bytes per
second, is stored from then on (writer.h) ..."""
STORE_RATE = MT_CAPTURE_STORE_RATE
JUDGE_BYTES = MT_CAPTURE_JUDGE_BYTES
"""... the window; a probe compresses one again after PROBE_BYTES of stored stream (doubled
after each failed probe, up to PROBE_MAX_BYTES)."""
PROBE_BYTES = MT_CAPTURE_PROBE_BYTES
PROBE_MAX_BYTES = MT_CAPTURE_PROBE_MAX_BYTES


cdef extern from "zstd.h" nogil:
    size_t ZSTD_compressBound(size_t size)
    size_t ZSTD_compress(void *dst, size_t capacity, const void *src, size_t size, int level)
    unsigned ZSTD_isError(size_t code)
    const char *ZSTD_getErrorName(size_t code)


def compress(bytes data, int level=3) -> bytes:
    """data as one zstd frame that records its size (zstandard's one-shot decompress needs
    it): small payloads, such as a capture's names section, compressed without the
    zstandard package, whose import (it brings `typing` and `platform`) was a third of
    the naming at the exit of `run --native`."""
    cdef size_t n = len(data)
    cdef size_t bound = ZSTD_compressBound(n)
    out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>bound)
    cdef char *dst = PyBytes_AS_STRING(out)
    cdef const char *src = data
    cdef size_t written
    with nogil:
        written = ZSTD_compress(dst, bound, src, n, level)
    if ZSTD_isError(written):
        raise ValueError(f"zstd: {ZSTD_getErrorName(written).decode()}")
    return out[:written]


def take_writer_lock(int fd) -> None:
    """Mark fd's file as being written (released when the writer closes it or dies): a
    writer that opens its file early takes it at once, so followers wait for its data."""
    mt_capture_take_lock(fd)


def writer_alive(int fd) -> bool:
    """Somebody holds the writer lock on fd's file."""
    return mt_capture_writer_alive(fd) == 1


cdef class CaptureWriter:
    """A capture file written into fd (owned: close() closes it): the magic, then the plain
    stream given to write(), compressed and flushed by the writer's policy (writer.h).
    Raises OSError when the file cannot be written."""

    cdef mt_capture c
    cdef bint finished
    cdef public int fd

    def __cinit__(self) -> None:
        memset(&self.c, 0, sizeof(self.c))
        self.finished = True
        self.fd = -1

    def __init__(self, int fd, double flush_interval=0.0, size_t block_bytes=0,
                 int store_ratio=STORE_RATIO, bint sampled=False) -> None:
        """flush_interval: seconds between flushes (0: FLUSH_INTERVAL_S); block_bytes: stream
        bytes per zstd block (0: BLOCK_BYTES); store_ratio: STORE_RATIO, 0 compresses all;
        sampled: the stream is a sampled capture's (slow): compress it harder (writer.h)."""
        self.fd = fd
        if mt_capture_open(&self.c, fd, <unsigned long long>(flush_interval * 1e9),
                           block_bytes) != 0:
            self._raise()
        if sampled:
            mt_capture_sampled(&self.c)
        self.c.store_ratio = store_ratio
        self.finished = False

    @classmethod
    def create(cls, path: str, flush_interval: float = 0.0, block_bytes: int = 0,
               store_ratio: int = STORE_RATIO, sampled: bool = False) -> CaptureWriter:
        """A new capture at path (truncated if it exists)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            return cls(fd, flush_interval, block_bytes, store_ratio, sampled)
        except BaseException:
            os.close(fd)
            raise

    cdef _raise(self):
        err = self.c.error
        raise OSError(err, f"cannot write the capture: {os.strerror(err)}")

    def write(self, const unsigned char[::1] data) -> None:
        """Add data (bytes-like) to the stream; it reaches the file at the next flush."""
        cdef int rc
        cdef size_t n = data.shape[0]
        if self.finished:
            raise ValueError("the capture is finished")
        if n == 0:
            with nogil:
                rc = mt_capture_write(&self.c, NULL, 0)
        else:
            with nogil:
                rc = mt_capture_write(&self.c, &data[0], n)
        if rc != 0:
            self._raise()

    def poll(self) -> None:
        """Flush if the interval is up: call it when the stream is idle."""
        cdef int rc = 0
        if not self.finished and mt_capture_flush_due(&self.c):
            with nogil:
                rc = mt_capture_flush(&self.c)
        if rc != 0:
            self._raise()

    def flush(self) -> None:
        """Make everything written so far readable from the file now."""
        cdef int rc = 0
        if not self.finished:
            with nogil:
                rc = mt_capture_flush(&self.c)
        if rc != 0:
            self._raise()

    @property
    def pending(self) -> bool:
        """Some data written is not readable from the file yet."""
        return bool(self.c.pending)

    @property
    def stored_bytes(self) -> int:
        """Stream bytes stored uncompressed so far (writer.h: what is not worth compressing)."""
        return self.c.stored

    @property
    def storing(self) -> bool:
        """The stream is being stored now (until the next probe)."""
        return bool(self.c.storing)

    def finish(self) -> None:
        """End the frame (the fd stays open); nothing can be written after it."""
        cdef int rc
        if self.finished:
            return
        self.finished = True
        with nogil:
            rc = mt_capture_finish(&self.c)
        mt_capture_release(&self.c)
        if rc != 0:
            self._raise()

    def close(self) -> None:
        """Finish, then close the fd."""
        if self.fd < 0:
            return
        try:
            self.finish()
        finally:
            os.close(self.fd)
            self.fd = -1

    def __dealloc__(self) -> None:
        mt_capture_release(&self.c)
