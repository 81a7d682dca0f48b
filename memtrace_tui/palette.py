"""Theme variables for frame kinds: `$frame-python`, `$frame-native`, … in every TCSS rule.

A kind's colour is defined once, in the reports' table (memtrace_core/report/kinds.py: green
Python, blue native C/C++, magenta inlined, amber name pending, grey no symbol); each theme
gets its own shade of it. The app offers them through Textual's
`App.get_theme_variable_defaults`, so a theme may override any of them in its `variables`.

- Truecolour themes: the reports' colour, darkened (light themes) or lightened (dark ones)
  until it reads at `MIN_CONTRAST` on the theme's backgrounds and on the cursor row.
- ANSI themes (`ansi-dark`, `ansi-light`): the terminal's own ANSI colour of the kind's hue.
- Terminals with 8/16 colours: the colour that Rich turns into that ANSI colour, so the kinds
  land on different ANSI colours (green, blue, magenta, yellow, grey) whatever the theme.
"""

from __future__ import annotations

from rich._palettes import STANDARD_PALETTE, WINDOWS_PALETTE
from textual.color import Color
from textual.theme import Theme

from memtrace_core.frames import FrameKind
from memtrace_core.report.kinds import KIND_COLOURS

# The ANSI colour of each kind's hue: bright on dark backgrounds, plain on light ones.
# Grey is the bright black on both (plain white would fade into a light background).
ANSI_HUES = {FrameKind.PYTHON: "green", FrameKind.NATIVE: "blue",
             FrameKind.INLINE: "magenta", FrameKind.UNRESOLVED: "yellow"}
ANSI_NUMBERS = {"green": 2, "yellow": 3, "blue": 4, "magenta": 5}
GREY_ANSI = "bright_black"

MIN_CONTRAST = 4.5  # WCAG AA for normal text
CURSOR_ALPHA = 0.22  # the focused cursor row: $primary 22% (memtrace.tcss)
SHADE_STEP = 0.01  # Lab lightness moved per step while seeking the contrast
FEW_COLOURS = ("standard", "windows")


def kind_variable(kind: FrameKind) -> str:
    """The TCSS variable name (without `$`) holding a kind's colour."""
    return f"frame-{kind.value}"


def _luminance(colour: Color) -> float:
    def channel(c: int) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(colour.r) + 0.7152 * channel(colour.g) + 0.0722 * channel(colour.b)


def contrast(a: Color, b: Color) -> float:
    """WCAG contrast ratio of two opaque colours (1 to 21)."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def readable_shade(colour: Color, backgrounds: list[Color], dark: bool) -> Color:
    """COLOUR, lightened on dark themes or darkened on light ones just enough to read at
    MIN_CONTRAST on every background (the hue stays)."""
    for _ in range(int(1 / SHADE_STEP)):
        if min(contrast(colour, bg) for bg in backgrounds) >= MIN_CONTRAST:
            break
        colour = colour.lighten(SHADE_STEP) if dark else colour.darken(SHADE_STEP)
    return colour


def _ansi_name(kind: FrameKind, dark: bool) -> str | None:
    hue = ANSI_HUES.get(kind)
    if hue is None:
        return GREY_ANSI if kind is FrameKind.NO_SYMBOL else None
    return f"bright_{hue}" if dark else hue


def _ansi_number(name: str) -> int:
    if name == GREY_ANSI:
        return 8
    bright = name.startswith("bright_")
    return ANSI_NUMBERS[name.removeprefix("bright_")] + (8 if bright else 0)


def kind_colours(theme: Theme, variables: dict[str, str],
                 colour_system: str | None) -> dict[str, str]:
    """Variable name -> colour for every frame kind, for THEME (whose generated VARIABLES
    give its backgrounds) on a terminal with COLOUR_SYSTEM."""
    palette = WINDOWS_PALETTE if colour_system == "windows" else STANDARD_PALETTE
    backgrounds = [colour for name in ("background", "surface", "panel")
                   if (colour := Color.parse(variables[name])).a == 1 and colour.ansi is None]
    if backgrounds:
        primary = Color.parse(variables["primary"])
        backgrounds.append(backgrounds[0].blend(primary, CURSOR_ALPHA))
    colours = {}
    for kind in FrameKind:
        ansi = _ansi_name(kind, theme.dark)
        base = KIND_COLOURS.get(kind)
        if ansi is not None and colour_system in FEW_COLOURS:
            colour = palette[_ansi_number(ansi)].hex
        elif ansi is not None and theme.ansi:
            colour = f"ansi_{ansi}"
        elif base is not None and backgrounds:
            colour = readable_shade(Color.parse(base), backgrounds, theme.dark).hex
        else:  # a kind without a colour yet: the theme's secondary text
            colour = variables["foreground-muted"]
        colours[kind_variable(kind)] = colour
    return colours


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
