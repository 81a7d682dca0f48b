"""`python -m memtrace_tui` is the `memtrace` command."""

import sys

from memtrace_tui.entry import main

sys.exit(main())
