"""TUI test fixtures: deterministic sessions (fake reader) and real captures (fixtures)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model"))


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch):
    """Frames name files relative to the repository root (stable across checkouts)."""
    monkeypatch.chdir(os.path.join(os.path.dirname(__file__), "..", ".."))
