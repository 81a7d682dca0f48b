"""`python -m memtrace_tui` is the `memtrace` command."""

import sys

from memtrace_tui.cli import main

sys.exit(main())
