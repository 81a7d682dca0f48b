"""The header: one line that never wraps.

pid, status and clock, heap now (and the chosen thread's own), the peak and the child
processes (traced, or untraced so far) always show;
then, as width allows: what the program's state needs (mark, growth, sampling, names still
pending), the script's name (the command is cut from the left, so its name and arguments
stay), RSS, the address space reserved apart from the heap, "native" and the peak's time,
the rest of the command, and last the rates,
which go first when the line is short.
"""

from __future__ import annotations

import os

from textual.content import Content
from textual.widget import Widget

from memtrace_core.model import Summary, format_bytes
from memtrace_core.model.metrics import LIVE_BYTES, format_rate, format_signed
from memtrace_core.sampling import ESTIMATE_MARK, describe
from memtrace_tui.palette import MUTED


def _si(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:.1f}M"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f}k"
    return f"{rate:.0f}"


Piece = tuple[str, str]  # (text, style)
SCRIPT_ROOM = 40  # at most this much of the command is kept ahead of RSS, rates...


def script_tail(command: str) -> str:
    """The end of the command from the script's (or module's) name: what is kept of it
    before the optional figures ("…churn.py 30" of "python /long/path/churn.py 30")."""
    words = command.split(" ")
    at = 0
    if len(words) > 1 and os.path.basename(words[0]).startswith("python"):
        at = 1  # after the interpreter and its options
        while at < len(words) - 1 and words[at].startswith("-"):
            if words[at] == "-m":
                at += 1
                break
            at += 2 if words[at] in ("-X", "-W") else 1
    name = os.path.basename(words[at])
    tail = " ".join([name, *words[at + 1:]])
    if tail == command:
        return tail[-SCRIPT_ROOM:]
    return ("…" + tail)[-SCRIPT_ROOM:]


def header_content(s: Summary, width: int, rss: int = 0) -> Content:
    """The header for a line of `width` cells."""
    ok = s.status == "running" or s.status.startswith("capture")
    sampled = getattr(s, "sample_bytes", 0)
    est = f"{ESTIMATE_MARK} " if sampled else ""  # a sampled capture's figures are estimates
    core: list[Piece] = [
        ("pid ", MUTED), (f"{s.pid}", "bold"), ("  ", ""),
        (s.status, f"bold {'$text-success' if ok else '$text-warning'}"),
        (f" {s.elapsed_s:.1f}s", ""), ("  heap ", MUTED),
        (est + format_bytes(s.heap_bytes), "bold"), ("  peak ", MUTED),
        (est + format_bytes(s.peak_bytes), "bold"),
    ]
    cursor = getattr(s, "cursor_s", None)
    if cursor is not None:  # the timeline's cursor: the tree shows that instant
        core += [("  at ", MUTED), (f"{cursor:.2f}s", "bold $text-warning"), (" ", ""),
                 (est + format_bytes(s.cursor_heap_bytes), "bold $text-warning")]
    thread = getattr(s, "thread", None)
    if thread:  # one thread chosen: its own heap, which the tree's root shows
        core[7:7] = [("  thread ", MUTED), (est + format_bytes(thread[LIVE_BYTES]), "bold")]
    # child processes: how many are traced (`live --follow-fork`, P picks one), or how many
    # ran untraced (so far); always shown, after the peak's time
    processes = getattr(s, "processes", 0)
    untraced = getattr(s, "untraced_children", 0)
    family: list[Piece] = []
    if processes:
        family += [("  ", ""), (f"{processes} process{'es' if processes > 1 else ''}", "bold")]
    if untraced:
        family += [("  ", ""), (f"{untraced} child{'ren' if untraced > 1 else ''} untraced",
                                "$text-warning")]
    # optional pieces in the order they are dropped when the line is short
    optional: list[tuple[str, list[Piece]]] = [
        ("records", [(f"  {_si(s.records_per_s)} rec/s", MUTED)]),
        ("allocs", [(f"  {_si(s.allocs_per_s)} allocs/s", MUTED)]),
        # a sampled stream's records carry no time, its ticks (250 ms) do: the peak was
        # reached by the tick after it (or by now), not at the one before it
        ("peak_at", [(f" by {s.peak_by_s:.2f}s" if sampled else f" at {s.peak_time_s:.2f}s",
                      MUTED)]),
        ("native", [("  native", "$text-primary")] if s.native else []),
        ("rss", [("  rss ", MUTED), (format_bytes(rss), "")] if rss else []),
        # address space set aside (an allocator's arena), in no figure: said, not counted
        ("reserved", [("  reserved ", MUTED), (format_bytes(s.reserved_bytes), "")]
         if getattr(s, "reserved_bytes", 0) else []),
        # the hint only when children are not followed (then the untraced are not Python)
        ("follow_hint", [(" (--follow-fork traces them)", MUTED)]
         if untraced and not processes else []),
        ("pending", [("  names pending ", MUTED),
                     (f"{s.pending_symbols}", "bold")]
         if s.pending_symbols else []),
        ("growth", [("  growth ", MUTED), (est + format_rate(s.growth_per_s), "bold")]
         if getattr(s, "growth_per_s", 0.0) else []),
        ("sampled", [(f"  {describe(sampled)}", "$text-warning")] if sampled else []),
        ("mark", [(f"  mark {s.mark_time_s:.1f}s ", MUTED),
                  (est + format_signed(s.since_mark_bytes), "bold")]
         if getattr(s, "mark_time_s", None) is not None else []),
    ]
    room = width
    states = ("mark", "growth", "sampled", "pending")  # before the script's name

    def size(pieces: list[Piece]) -> int:
        return sum(len(t) for t, _ in pieces)

    def status_at() -> int:
        return next(i for i, p in enumerate(core) if p[0] == s.status
                    or (p[0].endswith("…") and s.status.startswith(p[0][:-1])))

    def shorten_status(over: int) -> None:
        """The status `over` characters shorter, ending in "…", never under 7."""
        i = status_at()
        n = len(core[i][0]) - over
        if over > 0 and n >= 7:
            core[i] = (s.status[:n - 1] + "…", core[i][1])

    # very narrow: the clock goes, then the thread's figure (its badge and the tree's root
    # still show it), then the "pid" label; then the status is shortened; last, the process
    # counts go
    for label in ("clock", "thread", "pid", "status", "family"):
        if size(core) + size(family) <= room:
            break
        if label == "clock":
            core = [p for p in core if p[0] != f" {s.elapsed_s:.1f}s"]
        elif label == "thread":
            core = [p for i, p in enumerate(core) if not (thread and p[0] == "  thread ")
                    and not (i > 0 and thread and core[i - 1][0] == "  thread ")]
        elif label == "pid":
            core = core[1:]
        elif label == "status":
            i = status_at()
            shorten_status(min(size(core) + size(family) - room, len(core[i][0]) - 7))
        else:
            family = []
    shorten_status(size(core) - room)
    used = size(core) + size(family)
    kept: dict[str, list[Piece]] = {}

    def keep(names) -> None:
        nonlocal used
        for name, pieces in reversed(optional):  # most important first
            if name in names and pieces and used + size(pieces) <= room:
                kept[name] = pieces
                used += size(pieces)

    keep(states)
    command = s.command
    least = len(script_tail(command)) + 2  # the script's name, its arguments, "  "
    reserved = least if used + least <= room else 0
    used += reserved
    rates = ("allocs", "records")  # only once the whole command shows
    keep([name for name, _ in optional if name not in states + rates])
    used -= reserved
    if used + len(command) + 2 <= room:
        used += len(command) + 2
        keep(rates)
        used -= len(command) + 2
    space = room - used - 2
    if space >= min(8, least - 2):
        if len(command) > space:
            command = "…" + command[-(space - 1):]
        lead: list[Piece] = [(command, "$foreground"), ("  ", "")]
    else:
        lead = []
    # the peak's time right after the peak, then the sampling note, the processes, the
    # leak-hunting figures, the rest in reading order
    at = status_at()
    out = (core[:at] + lead + core[at:] + kept.get("peak_at", [])
           + kept.get("sampled", []) + family)
    order = ["mark", "growth", "follow_hint", "rss", "reserved", "native", "pending", "allocs",
             "records"]
    for name in order:
        out += kept.get(name, [])
    return Content.assemble(*[(t, st) if st else t for t, st in out if t])


class HeaderBar(Widget):
    """One-line status header, repainted from model summaries (fitted at render time)."""

    DEFAULT_CSS = """
    HeaderBar { height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.summary: Summary | None = None
        self.rss = 0

    def show(self, summary: Summary, rss: int = 0) -> None:
        if (summary, rss) != (self.summary, self.rss):
            self.summary, self.rss = summary, rss
            self.refresh()

    def render(self) -> Content:
        if self.summary is None:
            return Content("")
        return header_content(self.summary, self.size.width, self.rss)
