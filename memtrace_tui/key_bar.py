"""The footer: the active screen's own keys, as many as fit, and the pinned ones (`? help`,
`q quit`) always at the right end, whatever the width. A click on a key presses it."""

from __future__ import annotations

from textual import events
from textual.content import Content
from textual.widget import Widget

PINNED = ("help", "quit_app", "close")  # actions shown at the right end, never dropped


class KeyBar(Widget):
    """One line of `key description` items for the screen it is on."""

    DEFAULT_CSS = """
    KeyBar { height: 1; dock: bottom; background: $footer-background; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._spots: list[tuple[int, int, str]] = []  # (x0, x1, key) for clicks

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, _screen) -> None:
        self.refresh()

    def items(self) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
        """(key shown, description, key to press): the screen's items, then pinned ones."""
        hints = getattr(self.screen, "key_hints", None)
        free: list[tuple[str, str, str]] = list(hints()) if hints is not None else []
        pinned: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        # the screen's own keys first, then the focused widget's (fewer fit when narrow)
        active = sorted(self.screen.active_bindings.values(),
                        key=lambda b: 0 if b.node is self.screen else 1)
        for _node, binding, enabled, _tip in active:
            if not binding.show or not enabled or binding.action in seen:
                continue
            seen.add(binding.action)
            item = (self.app.get_key_display(binding), binding.description.lower(),
                    binding.key.split(",")[0])
            (pinned if binding.action in PINNED else free).append(item)
        if not any(press == "q" for _k, _d, press in pinned):  # q types text here: Ctrl+Q
            pinned.append(("^q", "quit", "ctrl+q"))
        return free, pinned

    def render(self) -> Content:
        width = self.size.width
        free, pinned = self.items()

        def cost(items: list[tuple[str, str, str]]) -> int:
            return sum(len(k) + 1 + len(d) + 2 for k, d, _ in items)

        room = width - cost(pinned)
        shown: list[tuple[str, str, str]] = []
        for item in free:
            if cost([*shown, item]) > room:
                break
            shown.append(item)
        pad = max(0, width - cost(shown) - cost(pinned) + 2)
        pieces: list[tuple[str, str] | str] = []
        self._spots = []
        x = 0
        for i, (key, desc, press) in enumerate(shown + pinned):
            if i == len(shown) and pad:
                pieces.append(" " * pad)
                x += pad
            start = x
            pieces += [(key, "bold $footer-key-foreground"), " ",
                       (desc, "$footer-description-foreground")]
            x += len(key) + 1 + len(desc)
            self._spots.append((start, x, press))
            if i < len(shown) + len(pinned) - 1:
                pieces.append("  ")
                x += 2
        return Content.assemble(*pieces)

    def on_click(self, event: events.Click) -> None:
        for x0, x1, key in self._spots:
            if x0 <= event.x < x1:
                event.stop()
                self.app.simulate_key(key)
                return
