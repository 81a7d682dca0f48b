"""The number columns of the tree and the table, and the column header line with badges.

The first column is the current metric (`in use↓`, `peak↓`, `allocated↓`, `count↓`): bytes
for byte metrics, allocation counts for the count metric, and the last number column shows
the other unit. `%root` is the share of the whole tree in the current metric (before any
filter). Narrow
terminals drop the last number column first, so the frame names keep their room.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.widget import Widget

from memtrace_core.model import CallTree, Metric, format_bytes
from memtrace_core.model.metrics import N_COUNTERS, format_signed
from memtrace_tui.palette import MUTED

NUM_W = 10  # "1023.9 MiB"
PCT_W = 6  # "100.0%"
WIDE = 90  # from this width on, the last number column is shown
SHORT = {"in use": "in use", "peak": "peak", "total allocated": "allocated",
         "allocations": "count", "temporary": "temporary", "growth": "growth/s",
         "since mark": "Δ mark", "in use at": "in use at"}


def metric_label(metric: Metric) -> str:
    """Short name of a metric for a column title or a badge."""
    return SHORT.get(metric.value, metric.value[:9])


def counts_metric(metric: Metric) -> bool:
    """True when the metric counts allocations rather than bytes."""
    return metric.sort_index == metric.count_index


def grand_total(tree: CallTree) -> int:
    """What `%root` divides by: the whole tree in the current metric, for all threads or
    the chosen one, before any filter (a filtered subset shows its true share)."""
    index = tree.metric.sort_index
    if not tree.filter:
        return tree.root.total[index]
    if tree.thread is not None:
        return tree.thread_totals().get(tree.thread, [0] * N_COUNTERS)[index]
    return tree.whole_counters()[index]


def fmt_count(n: int) -> str:
    return f"{n:,}"


@dataclass(frozen=True)
class Layout:
    """Which number columns fit, for one view width."""

    wide: bool

    @classmethod
    def for_width(cls, width: int) -> Layout:
        return cls(wide=width >= WIDE)

    @property
    def numbers_width(self) -> int:
        return (NUM_W + 1) * 2 + PCT_W + 2 + ((NUM_W + 1) if self.wide else 0)

    def numbers(self, metric: Metric, first: list[int], second: list[int], grand: int,
                share: list[int] | None = None, span_s: float = 0.0) -> str:
        """`  in use        own      %     count  ` for one node or location: `first` and
        `second` in the metric's unit, `share` (default `first`) as % of `grand`, then the
        other unit of `first`. A change (since mark) is signed; growth is per second over
        span_s."""
        share = first if share is None else share
        if counts_metric(metric):
            a, b = fmt_count(first[metric.count_index]), fmt_count(second[metric.count_index])
            other = format_bytes(first[metric.bytes_index])
        elif metric is Metric.GROWTH:
            per_s = (lambda n: n / span_s) if span_s > 0 else (lambda n: 0.0)  # noqa: E731
            a = format_signed(round(per_s(first[metric.bytes_index])))  # per second: the
            b = format_signed(round(per_s(second[metric.bytes_index])))  # title says so
            other = f"{per_s(first[metric.count_index]):+,.1f}/s"
        elif metric.signed:
            a, b = format_signed(first[metric.bytes_index]), format_signed(
                second[metric.bytes_index])
            other = f"{first[metric.count_index]:+,}"
        else:
            a, b = format_bytes(first[metric.bytes_index]), format_bytes(second[metric.bytes_index])
            other = fmt_count(first[metric.count_index])
        part = share[metric.sort_index]
        pct = f"{100.0 * part / grand:5.1f}%" if grand else "-"
        text = f"{a:>{NUM_W}} {b:>{NUM_W}} {pct:>{PCT_W}}"
        if self.wide:
            text += f" {other:>{NUM_W}}"
        return text + "  "

    def titles(self, metric: Metric, first: str, second: str, what: str) -> str:
        """Column titles; `first`/`second` name the subtree and own numbers."""
        other = "bytes" if counts_metric(metric) else "count"
        text = f"{first:>{NUM_W}} {second:>{NUM_W}} {'%root':>{PCT_W}}"
        if self.wide:
            text += f" {other:>{NUM_W}}"
        return f"{text}  {what}"


def badge(text: str, style: str = "$text-primary") -> Content:
    """One reverse-video chip: readable in any theme and without colour."""
    return Content.assemble((f" {text} ", f"bold reverse {style}"))


def column_bar(titles: str, badges: list[tuple[str, str]], width: int) -> Content:
    """Titles on the left, badges pushed to the right; badges shrink before titles do."""
    room = width - len(titles) - 2
    chips: list[Content] = []
    used = 0
    for text, style in reversed(badges):  # the last badges (filter, PAUSED) matter most
        need = len(text) + 3
        if used + need > room:
            cut = room - used - 3
            if cut >= 6:
                chips.append(badge(text[:cut - 1] + "…", style))
                used += cut + 3
            continue
        chips.append(badge(text, style))
        used += need
    chips.reverse()
    pad = max(1, width - len(titles) - used)
    parts: list[Content | tuple[str, str] | str] = [(titles, f"bold {MUTED}"),
                                                     " " * pad]
    for i, chip in enumerate(chips):
        parts.append(chip)
        if i < len(chips) - 1:
            parts.append(" ")
    return Content.assemble(*parts)


class ColumnBar(Widget):
    """The column titles line, with the view's settings as badges at its right end."""

    DEFAULT_CSS = """
    ColumnBar { height: 1; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.titles = ""
        self.badges: list[tuple[str, str]] = []

    def show(self, titles: str, badges: list[tuple[str, str]]) -> None:
        if (titles, badges) != (self.titles, self.badges):
            self.titles, self.badges = titles, badges
            self.refresh()

    def render(self) -> Content:
        return column_bar(self.titles, self.badges, self.size.width)
