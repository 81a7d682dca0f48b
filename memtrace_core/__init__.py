"""memtrace's engine: the tracer that runs inside the profiled process, the reader, the
symbolizer, the call-tree model and the reports' data and file exports.

No command line and no terminal here (that is memtrace_tui, the application): nothing in
this package imports memtrace_tui, textual or rich (setup.cfg's import-linter contracts),
and the traced process loads only the tracer.
"""

__version__ = "0.1.0"
