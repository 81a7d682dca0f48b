"""Colours come from the theme: readable in light and dark themes, distinct frame kinds on a
16/8-colour terminal, a reverse-video cursor with NO_COLOR (the marks stay either way)."""

from __future__ import annotations

import pytest
from rich.color import ColorSystem
from textual.geometry import Region

from memtrace_core.frames import FrameKind
from memtrace_tui.app import MemtraceApp
from tests.tui import scenarios

SIZE = (110, 32)
GUIDE_ROLES = {"guide", "scrollbar"}  # deliberately faint: tree lines, scrollbar track


def luminance(colour) -> float:
    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = colour.get_truecolor()
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(fg, bg) -> float:
    a, b = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def segments(widget):
    """(text, style) of every painted cell run of a widget."""
    w, h = widget.outer_size
    for strip in widget.render_lines(Region(0, 0, w, h)):
        for seg in strip:
            if seg.text.strip() and seg.style is not None:
                yield seg.text, seg.style


def low_contrast(widget, minimum: float, skip=()) -> list[tuple[str, float]]:
    bad = []
    for text, style in segments(widget):
        if text in skip or style.color is None or style.bgcolor is None:
            continue
        fg, bg = (style.bgcolor, style.color) if style.reverse else (style.color, style.bgcolor)
        ratio = contrast(fg, bg)
        if ratio < minimum:
            bad.append((text, round(ratio, 2)))
    return bad


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light", "solarized-light",
                                   "gruvbox"])
@scenarios.sync
async def test_text_is_readable_in_every_theme(tmp_path, theme):
    app = scenarios.native_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        app.theme = theme
        await pilot.press("e")
        await pilot.pause()
        main = app.main
        tree = main.tree_view
        guides = {text for i in tree.visible_range() for text, roles in tree.row(i)
                  if set(roles.split()) & GUIDE_ROLES}
        for widget, skip in ((main.header_bar, ()), (main.columns, ()), (tree, guides),
                             (main.detail, ()), (main.query_one("#legend"), ()),
                             (main.chart, ())):
            assert low_contrast(widget, 3.0, skip) == [], (theme, type(widget).__name__)
        # the key bar uses the theme's own footer colours (textual-light's bold keys: 2.9)
        assert low_contrast(main.query_one("#keys"), 2.5) == [], theme


@scenarios.sync
async def test_frame_kinds_distinct_on_a_16_colour_terminal(tmp_path, monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("COLORTERM")
    for theme in ("textual-dark", "textual-light"):
        app = scenarios.native_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            app.theme = theme
            await pilot.pause()
            assert app.console.color_system == "standard"
            tree = app.main.tree_view
            text = tree.role_style("number", False).color.downgrade(ColorSystem.STANDARD)
            kinds = {kind: tree.role_style(kind.value, False).color.downgrade(
                ColorSystem.STANDARD).number for kind in FrameKind}
            assert len(set(kinds.values())) == len(kinds), (theme, kinds)
            assert text.number not in kinds.values(), (theme, kinds)
            # a translucent cursor background would round to the plain one: reverse video
            assert tree.role_style("python", True).reverse
            assert not tree.role_style("python", False).reverse


@scenarios.sync
async def test_no_color_cursor_is_reverse_video_and_marks_stay(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    path = tmp_path / "sample.mtrace"
    scenarios.write_sample(path)
    app = MemtraceApp(scenarios.session_from(path))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        tree = app.main.tree_view
        y = tree.cursor - tree.top
        strip = tree.render_line(y)
        styled = [seg for seg in strip if seg.text.strip()]
        assert styled and all(seg.style.reverse for seg in styled)
        other = tree.render_line(0 if y else 1)
        assert not any(seg.style.reverse for seg in other if seg.text.strip())
        assert "[py]" in "".join(seg.text for seg in strip)


def kind_colour(tree, kind: FrameKind):
    return tree.role_style(kind.value, False).color


def far_apart(a, b) -> bool:
    """Two rich colours a reader tells apart: different ANSI colours, or RGB far apart."""
    if a.triplet is None or b.triplet is None:
        return a.number != b.number
    return sum((x - y) ** 2 for x, y in zip(a.triplet, b.triplet, strict=True)) ** 0.5 > 100


@scenarios.sync
async def test_python_and_native_frames_differ_in_every_theme(tmp_path):
    """Every theme Textual offers (the command palette lists them all), ANSI ones included:
    Python and C/C++ frames far apart in colour, each kind readable on the background."""
    app = scenarios.native_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        themes = sorted(app.available_themes)
        assert {"ansi-dark", "ansi-light", "textual-light", "nord"} <= set(themes)
        for theme in themes:
            app.theme = theme
            await pilot.pause()
            tree = app.main.tree_view
            python, native = (kind_colour(tree, k) for k in (FrameKind.PYTHON, FrameKind.NATIVE))
            assert far_apart(python, native), (theme, python, native)
            if app.current_theme.ansi:
                continue  # the terminal's own palette decides
            background = tree.rich_style.bgcolor
            for kind in FrameKind:
                assert contrast(kind_colour(tree, kind), background) >= 4.5, (theme, kind)


@scenarios.sync
async def test_a_theme_sets_its_own_kind_colours(tmp_path):
    """A theme's own `frame-*` variables win over memtrace's shades."""
    from textual.theme import Theme

    app = scenarios.native_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        app.register_theme(Theme(name="mine", primary="#0178D4", dark=True,
                                 variables={"frame-native": "#ff0000"}))
        app.theme = "mine"
        await pilot.pause()
        tree = app.main.tree_view
        assert kind_colour(tree, FrameKind.NATIVE).triplet.hex == "#ff0000"
        assert kind_colour(tree, FrameKind.PYTHON).triplet.hex != "#ff0000"
