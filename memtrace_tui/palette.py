"""Theme variables for frame kinds: `$frame-python`, `$frame-native`, … in every TCSS rule.

The dark palette is the reports' (memtrace_core/report/kinds.py); light themes get darker
shades with readable contrast on a light background. Terminals with 8/16 colours get
colours that land on four different ANSI colours (green, blue, magenta, yellow) once Rich
downgrades them, so every kind stays distinct there too. A theme may override any of them
through its own `variables`.
"""

from __future__ import annotations

from memtrace_core.frames import FrameKind
from memtrace_core.report.kinds import KIND_COLOURS

LIGHT = {
    FrameKind.PYTHON: "#008700",
    FrameKind.NATIVE: "#005fd7",
    FrameKind.INLINE: "#af00af",
    FrameKind.UNRESOLVED: "#af5f00",
}
# downgraded by Rich to bright green / bright blue / bright magenta / bright yellow
ANSI_DARK = {
    FrameKind.PYTHON: "#5fd75f",
    FrameKind.NATIVE: "#5f87ff",
    FrameKind.INLINE: "#ff87ff",
    FrameKind.UNRESOLVED: "#ffd75f",
}
# downgraded to green / bright blue / magenta / yellow
ANSI_LIGHT = LIGHT
FALLBACK = {True: "#d0d0d0", False: "#303030"}  # a kind added later without a colour here


def kind_variable(kind: FrameKind) -> str:
    """The TCSS variable name (without `$`) holding a kind's colour."""
    return f"frame-{kind.value}"


def kind_colours(dark: bool, colour_system: str | None) -> dict[str, str]:
    """Variable name -> colour for every frame kind, for this theme and terminal."""
    few = colour_system in ("standard", "windows")
    if dark:
        table = ANSI_DARK if few else KIND_COLOURS
    else:
        table = ANSI_LIGHT if few else LIGHT
    return {kind_variable(k): table.get(k, KIND_COLOURS.get(k, FALLBACK[dark]))
            for k in FrameKind}
