"""Theme variables for frame kinds: `$frame-python`, `$frame-native`, … in every TCSS rule.

The dark palette is the reports' (memtrace_core/report/kinds.py); light themes get darker
shades with readable contrast on a light background. Terminals with 8/16 colours get
colours that land on different ANSI colours (green, blue, magenta, yellow, grey) once Rich
downgrades them, so every kind stays distinct there too. A theme may override any of them
through its own `variables`. Kinds are keyed by value, so a kind added to FrameKind later
gets a colour (the reports', or a neutral one) without a change here.
"""

from __future__ import annotations

from memtrace_core.frames import FrameKind
from memtrace_core.report.kinds import KIND_COLOURS

# contrast >= 3 against light backgrounds and the cursor row over them (test_tui_colours)
LIGHT = {"python": "#006400", "native": "#0040a0", "inline": "#870087",
         "unresolved": "#7a4a00", "nosymbol": "#585858"}
# downgraded by Rich to bright green / bright blue / bright magenta / bright yellow / grey
ANSI_DARK = {"python": "#5fd75f", "native": "#5f87ff", "inline": "#ff87ff",
             "unresolved": "#ffd75f", "nosymbol": "#767676"}
# downgraded to green / blue / magenta / yellow / grey
ANSI_LIGHT = LIGHT
FALLBACK = {True: "#a8a8a8", False: "#585858"}


def kind_variable(kind: FrameKind) -> str:
    """The TCSS variable name (without `$`) holding a kind's colour."""
    return f"frame-{kind.value}"


def kind_colours(dark: bool, colour_system: str | None) -> dict[str, str]:
    """Variable name -> colour for every frame kind, for this theme and terminal."""
    few = colour_system in ("standard", "windows")
    table = (ANSI_DARK if few else {}) if dark else (ANSI_LIGHT if few else LIGHT)
    return {kind_variable(k): table.get(k.value) or (KIND_COLOURS.get(k) if dark else None)
            or FALLBACK[dark] for k in FrameKind}


def kind_css() -> str:
    """TCSS giving each kind's row role its colour (one rule per kind, whatever the kinds)."""
    rules = [f"LinesView > .lines--{k.value} {{ color: ${kind_variable(k)}; }}"
             for k in FrameKind]
    rules += [f"App:nocolor LinesView > .lines--{k.value} {{ color: $foreground; }}"
              for k in FrameKind]
    return "\n".join(rules)

# Secondary text (labels, locations): the theme's foreground, a little faded. Not
# `$foreground-muted` (too faint on `$panel` in some light themes) nor `$text-muted`
# (an `auto` colour, which Content styles do not resolve).
MUTED = "$foreground 85%"
