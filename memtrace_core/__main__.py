"""`python -m memtrace_core`: the engine has no command line; say where it is."""

import sys

print("memtrace: error: memtrace_core is the engine; the command is `memtrace` "
      "(or `python -m memtrace_tui`)", file=sys.stderr)
sys.exit(2)
