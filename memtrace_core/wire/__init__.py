"""The wire format's one definition: format.h (record types, allocator codes, magics and
version), shared by the tracer (writer) and the reader, and format.pxd exposing it to
Cython. The reader's Python constants are built from it (memtrace_core.reader)."""
