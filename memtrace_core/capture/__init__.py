"""Capture files: the one writer (writer.h/writer.c, in C; `memtrace run`'s tracer links it,
_writer.pyx is its Python face for `live -o`, `attach -o` and portable captures), the
writer's lock that followers test, and the copier that pumps a stream into a capture
(copier.py). Small and dependency-free: the traced process may load it."""

from memtrace_core.capture._writer import (
    FLUSH_INTERVAL_S,
    CaptureWriter,
    take_writer_lock,
    writer_alive,
)

__all__ = ["FLUSH_INTERVAL_S", "CaptureWriter", "take_writer_lock", "writer_alive"]
