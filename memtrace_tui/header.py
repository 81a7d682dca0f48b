"""The header: pid, command, status, elapsed, heap now, peak and when, rates, pending names."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from memtrace_core.model import Summary, format_bytes


def _si(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:.1f}M"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f}k"
    return f"{rate:.0f}"


def header_text(s: Summary, *, paused: bool, metric: str, thread: str, filt: str) -> Text:
    """Two lines: who and how it runs, then the heap figures and the view settings."""
    t = Text()
    t.append("memtrace ", style="bold #5fafff")
    t.append(f"pid {s.pid}  ", style="bold")
    t.append(s.command[:60], style="#d0d0d0")
    t.append("  ")
    colour = "#5fd75f" if s.status == "running" else "#ffaf5f"
    t.append(s.status, style=f"bold {colour}")
    t.append(f"  {s.elapsed_s:.1f}s", style="#d0d0d0")
    if s.native:
        t.append("  native", style="#5fafff")
    if paused:
        t.append("  PAUSED", style="bold reverse #ffd75f")
    t.append("\n")
    t.append("heap ", style="#808080")
    t.append(format_bytes(s.heap_bytes), style="bold")
    t.append("  peak ", style="#808080")
    t.append(f"{format_bytes(s.peak_bytes)} at {s.peak_time_s:.2f}s", style="bold")
    t.append(f"  allocs/s {_si(s.allocs_per_s)}  records/s {_si(s.records_per_s)}",
             style="#d0d0d0")
    t.append(f"  symbols pending {s.pending_symbols}", style="#d7af5f")
    t.append(f"   [{metric} · {thread}" + (f" · /{filt}" if filt else "") + "]",
             style="#87d7ff")
    return t


class HeaderBar(Static):
    """Two-line status header, repainted from model summaries."""

    DEFAULT_CSS = """
    HeaderBar { height: 2; background: $boost; padding: 0 1; }
    """
