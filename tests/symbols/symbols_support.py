"""Helpers for the symbolizer tests (a module of its own: several test folders have a
conftest.py, so `from conftest import` would pick whichever was imported first)."""

from pathlib import Path


def source_line(src: Path, marker: str) -> int:
    """1-based line of the source line holding a marker comment."""
    for i, text in enumerate(src.read_text().splitlines(), 1):
        if marker in text:
            return i
    raise AssertionError(marker)
