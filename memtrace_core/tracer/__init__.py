"""The tracer that runs inside the profiled process: GOT hooks (C), stack capture, writer.

Only this package is imported into the traced program: never the reader, textual or
pyelftools.
"""
