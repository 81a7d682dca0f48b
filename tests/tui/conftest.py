"""TUI test fixtures: the repository root as working directory, a truecolor terminal."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch):
    """Frames name files relative to the repository root (stable across checkouts)."""
    monkeypatch.chdir(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(autouse=True)
def _truecolor_terminal(monkeypatch):
    """The same colours wherever the tests run: a truecolor terminal, colours on (tests of
    NO_COLOR and 16-colour terminals set their own)."""
    monkeypatch.setenv("COLORTERM", "truecolor")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
