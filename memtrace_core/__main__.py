"""`python -m memtrace_core` is the `memtrace` command."""

import sys

from memtrace_core.cli import main

sys.exit(main())
