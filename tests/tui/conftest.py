"""TUI test fixtures: deterministic sessions (fake reader) and real captures (fixtures)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model"))
