"""The `memtrace` command's entry point (the console script and `python -m memtrace_tui`):
Python's collector is paused before memtrace imports anything of its own, so that a traced
program starts with it where python would leave it (memtrace_core/tracer/collector.py)."""

from __future__ import annotations


def main() -> int:
    """Run the `memtrace` command; the collector runs again before the command's work (or,
    for `run`, just before the program starts), and in any case once it returns."""
    from memtrace_core.tracer import collector

    collector.pause()
    try:
        from memtrace_tui.cli import main as command

        return command()
    finally:
        collector.resume()
