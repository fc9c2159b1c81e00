"""The footer: Textual's compact footer, showing only the keys whose labels fit whole.

Why: at 80 columns a screen's keys and the app's (help, quit, runs, monitor,
new) need more room than there is, and Textual's footer cuts the last label
mid-word ("c Comp"). This one drops whole keys instead: `?` help is always
kept (it lists every key, and ctrl+p finds every action), then the screen's
own keys, then the focused widget's, then the app's; what is kept is shown in
Textual's order. It recomposes when its width changes.
"""
from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

HELP_ACTION = "help"  # the app's `?`: never dropped


def key_width(key: FooterKey) -> int:
    """Cells a key takes in the compact style: "k Label" and one cell of margin (the palette key: a border instead)."""
    label = cell_len(key.key_display) + (1 + cell_len(key.description) if key.description else 0)
    return label + 1


class FitFooter(Footer):
    """A compact footer that drops whole keys, least specific first, rather than cutting a label."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(compact=True, **kwargs)
        self._width = 0

    def _rank(self, key: FooterKey) -> int:
        """0 help, 1 the screen's own key, 2 the focused widget's, 3 the app's."""
        node = self.screen.active_bindings.get(key.key, (None,))[0]
        if key.action == HELP_ACTION and node is self.app:
            return 0
        return 1 if node is self.screen else 3 if node is self.app else 2

    def compose(self):
        widgets = list(super().compose())
        keys = [w for w in widgets if isinstance(w, FooterKey) and not w.has_class("-command-palette")]
        self._width = width = self.size.width
        if width:  # laid out: keep what fits, by rank
            room = width - 1 - sum(key_width(w) for w in widgets if w not in keys)  # a cell before the palette key
            kept: set[int] = set()
            for key in sorted(keys, key=self._rank):  # sorted() is stable: Textual's order within a rank
                if key_width(key) <= room:
                    kept.add(id(key))
                    room -= key_width(key)
            widgets = [w for w in widgets if w not in keys or id(w) in kept]
        yield from widgets

    async def on_resize(self) -> None:
        if self.size.width != self._width:
            await self.recompose()
