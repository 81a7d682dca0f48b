"""memtrace core: the tracer that runs inside the profiled process, and the headless reader.

Nothing here imports textual: the traced process loads only the tracer, and the reader,
symbolizer and reporters stay usable without a terminal UI.
"""

__version__ = "0.1.0"
