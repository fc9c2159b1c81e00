"""A methods x methods heatmap with the number in every cell.

Why not plotext's matrix_plot: it draws colour only, and the overlap numbers are
what a reader quotes. Cell colours blend the app theme's surface towards its
primary colour (and towards its error colour for negative correlations), and the
text takes the blend's contrasting colour, so it reads on dark and light themes.
"""
from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text
from textual.color import Color
from textual.reactive import reactive
from textual.widget import Widget


class Heatmap(Widget):
    """Square matrix of values in [-1, 1] (or [0, 1]) with row and column labels."""

    matrix: reactive[list[list[float]]] = reactive(list, layout=True)
    labels: reactive[list[str]] = reactive(list, layout=True)

    def __init__(self, *, signed: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.signed = signed

    @property
    def cell_width(self) -> int:
        """Wide enough for the column labels (up to 12), never narrower than a number."""
        return max(7, min(12, max((len(label) for label in self.labels), default=0) + 1))

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda theme: self.refresh())

    def show(self, labels: list[str], matrix: list[list[float]], signed: bool = False) -> None:
        self.signed = signed
        self.labels = list(labels)
        self.matrix = [list(row) for row in matrix]

    def _colors(self) -> tuple[Color, Color, Color]:
        theme = self.app.theme_variables
        base = Color.parse(theme.get("surface", "#1e1e1e"))
        high = Color.parse(theme.get("primary", "#0178d4"))
        low = Color.parse(theme.get("error", "#ba3c5b"))
        return base, high, low

    def _cell_style(self, value: float) -> Style:
        base, high, low = self._colors()
        if math.isnan(value):
            bg = base
        elif value >= 0:
            bg = base.blend(high, min(1.0, value))
        else:
            bg = base.blend(low, min(1.0, -value))
        fg = bg.get_contrast_text(1.0)
        return Style(color=fg.rich_color, bgcolor=bg.rich_color)

    def get_content_width(self, container, viewport) -> int:
        return self._label_width() + 1 + len(self.labels) * self.cell_width

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.labels) + 1 if self.labels else 1

    def _label_width(self) -> int:
        return min(16, max((len(label) for label in self.labels), default=4))

    def render(self) -> Text:
        if not self.labels:
            return Text("")
        w, cw = self._label_width(), self.cell_width
        out = Text(no_wrap=True, overflow="crop")
        out.append(" " * (w + 1))
        for label in self.labels:
            out.append(label[: cw - 1].center(cw), style="bold")
        for label, row in zip(self.labels, self.matrix):
            out.append("\n")
            out.append(label[:w].rjust(w) + " ", style="bold")
            for value in row:
                text = "  -" if value is None or math.isnan(value) else f"{value:.2f}"
                out.append(text.center(cw), style=self._cell_style(float("nan") if value is None else value))
        return out
