"""Heap over time: bars in eighths of a cell, a zero line that is also the time axis.

The top of the scale is the header's peak (the reader's exact high-water mark), so the
chart's label and the header always agree; the samples between ticks can only be lower.
The bottom row is the zero line, labelled with times from the start to the last tick, so
an empty start of the run still shows where the chart begins.
"""

from __future__ import annotations

from textual import events
from textual.content import Content
from textual.widget import Widget

from memtrace_core.model import Session, format_bytes
from memtrace_tui.palette import MUTED

BLOCKS = " ▁▂▃▄▅▆▇█"
LABEL_W = 10  # "1023.9 MiB"


def _seconds(t: float, span: float) -> str:
    """A time label with as many decimals as the span needs."""
    if span >= 20:
        return f"{t:.0f}s"
    return f"{t:.1f}s" if span >= 2 else f"{t:.2f}s"


def axis_line(width: int, end_s: float) -> str:
    """`0s──────1.5s──────3.0s`: the zero line with time labels along it."""
    line = ["─"] * width
    if width <= 0:
        return ""

    def put(at: int, text: str) -> None:
        if 0 <= at and at + len(text) <= width and all(c == "─" for c in line[max(0, at - 1):
                                                                            at + len(text) + 1]):
            line[at:at + len(text)] = text

    end = _seconds(end_s, end_s)
    put(width - len(end), end)
    put(0, _seconds(0, end_s))
    ticks = max(0, min(4, width // 16 - 1))
    for i in range(1, ticks + 1):
        frac = i / (ticks + 1)
        label = _seconds(end_s * frac, end_s)
        put(int(width * frac) - len(label) // 2, label)
    return "".join(line)


def bar_rows(values: list[int], top: int, rows: int) -> list[str]:
    """Rows of block characters, top row first; a non-zero value shows at least ▁."""
    out = [[" "] * len(values) for _ in range(rows)]
    for x, v in enumerate(values):
        if v <= 0 or top <= 0:
            continue
        eighths = max(1, round(v * rows * 8 / top))
        for r in range(rows):  # r = 0 is the bottom row
            fill = min(8, eighths - r * 8)
            if fill <= 0:
                break
            out[rows - 1 - r][x] = BLOCKS[fill]
    return ["".join(row) for row in out]


class HeapChart(Widget):
    """Tracked heap over the whole run (max per column) on a scale up to the peak."""

    DEFAULT_CSS = """
    HeapChart { height: 3; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session: Session | None = None
        self.values: list[int] = []
        self.top = 0
        self._data: tuple[int, list[int], int, float] | None = None  # width, heap, peak, end
        self._instant = None

    @property
    def peak(self) -> int:
        """The peak the chart was last given (its scale's top and label)."""
        return self._data[2] if self._data is not None else 0

    def _bars_width(self) -> int:
        return max(10, self.size.width - LABEL_W - 1)

    def _take(self, session: Session) -> None:
        """The series and figures of this moment (under the session lock)."""
        width = self._bars_width()
        heap, _rss = session.heap_series(width)
        figures = session.tree.figures  # the data the header and the tree show
        self._data = (width, heap, figures.peak_bytes, figures.last_time_us / 1e6)
        self._instant = session.tree.instant  # the timeline's cursor (`view`)

    def refresh_from(self, session: Session) -> None:
        """Take the data now, with the header and the tree (call under the session lock:
        a later update must not reach the chart alone), and draw it when painted."""
        self.session = session
        self._take(session)
        self.refresh()

    def render(self) -> Content:
        session = self.session
        if session is None or self._data is None:
            return Content("")
        if self._data[0] != self._bars_width():  # resized: the same moment, new buckets
            with session.lock:
                self._take(session)
        width, heap, peak, end_s = self._data
        rows = max(1, self.size.height - 1)
        instant = self._instant
        values = heap + [0] * (width - len(heap))
        self.values = values
        self.top = max(peak, max(values, default=0))
        bars = bar_rows(values, self.top, rows)
        # the timeline's cursor: one column in reverse video, ▲ on the time axis
        at = -1
        if instant is not None and end_s > 0:
            at = min(width - 1, round(instant.t_us / 1e6 / end_s * (width - 1)))
        self.plot_width = width
        muted = MUTED
        pieces: list[tuple[str, str] | str] = []
        for i, row in enumerate(bars):
            label = format_bytes(self.top) if i == 0 else ("heap" if i == 1 else "")
            pieces += [(f"{label:>{LABEL_W}}", muted), ("┤" if i == 0 else "│", muted)]
            if at >= 0:
                pieces += [(row[:at], "$text-primary"),
                           (row[at] if row[at] != " " else "│", "bold $text-warning"),
                           (row[at + 1:], "$text-primary"), "\n"]
            else:
                pieces += [(row, "$text-primary"), "\n"]
        axis = axis_line(width, end_s)
        pieces += [(f"{'0':>{LABEL_W}}", muted), ("└", muted)]
        if at >= 0:
            pieces += [(axis[:at], muted), ("▲", "bold $text-warning"), (axis[at + 1:], muted)]
        else:
            pieces.append((axis, muted))
        return Content.assemble(*pieces)

    def on_click(self, event: events.Click) -> None:
        """A click on the plot puts the timeline's cursor there (`view`)."""
        offset = event.get_content_offset(self)
        width = getattr(self, "plot_width", 0)
        if offset is None or width <= 1:
            return
        x = offset.x - LABEL_W - 1
        if 0 <= x < width:
            screen = self.screen
            if hasattr(screen, "set_time_fraction"):
                screen.set_time_fraction(x / (width - 1))
