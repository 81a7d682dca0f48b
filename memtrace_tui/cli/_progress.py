"""A progress bar on stderr for commands that read or name a capture for a while: shown
only when stderr is a terminal and the work has already taken more than a second (so
quick commands and pipes print nothing), with rich's progress display.

$MEMTRACE_PROGRESS_AFTER sets that delay in seconds (0 shows it at once)."""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # not typing's: `run --native` imports this at exit (issue 14)
if TYPE_CHECKING:
    from typing import Any

DEFAULT_AFTER_S = 1.0


def _after() -> float:
    try:
        return max(0.0, float(os.environ.get("MEMTRACE_PROGRESS_AFTER", DEFAULT_AFTER_S)))
    except ValueError:
        return DEFAULT_AFTER_S


class Progress:
    """Call with (done, total) or (what, done, total); close() when the work is over."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.enabled = sys.stderr is not None and sys.stderr.isatty()
        self.start = time.monotonic()
        self.after = _after()
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, *args: Any) -> None:
        if not self.enabled:
            return
        if len(args) == 3:
            what, done, total = args
        else:
            (done, total), what = args, self.what
        if self._bar is None:
            if time.monotonic() - self.start < self.after:
                return
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

            self._bar = Progress(TextColumn("memtrace: {task.description}"), BarColumn(),
                                 TaskProgressColumn(), console=Console(stderr=True),
                                 transient=True)
            self._bar.start()
            self._task = self._bar.add_task(what, total=max(total, 1))
        self._bar.update(self._task, description=what, completed=done, total=max(total, 1))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def name_capture(path: str, quiet_if_none: bool = True,
                 known: tuple[set[int], bytes] | None = None) -> None:
    """Embed the names of a just-finished native capture (symbols/embed.py; `known`: what
    its stream says about native frames, when this process's tracer wrote it), with
    progress; a failure is one warning line, never an error (the capture stays readable)."""
    try:
        from memtrace_core.symbols.embed import embed

        with Progress("naming native frames") as progress:
            named = embed(path, progress=progress, known=known)
        if named or not quiet_if_none:
            print(f"memtrace: named {named:,} native addresses in {path} (it opens named on "
                  f"any machine)", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - the capture itself is complete and readable
        print(f"memtrace: warning: could not name the native frames of {path}: "
              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
              f"run `memtrace symbolize {path}` on this machine", file=sys.stderr)
