"""A methods x methods heatmap with the number in every cell.

Why not plotext's matrix_plot: it draws colour only, and the overlap numbers are
what a reader quotes. Cell colours blend the app theme's surface towards its
primary colour (and towards its error colour for negative correlations), and the
text takes the blend's contrasting colour, so it reads on dark and light themes.
The scale spans the matrix's own off-diagonal range (0.94 and 1.00 must look
different), and a legend row under the matrix says which colour is which value.
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

    def value_range(self) -> tuple[float, float]:
        """The lowest and highest off-diagonal value (the diagonal is 1 by definition); (0, 1) if none."""
        values = [v for i, row in enumerate(self.matrix) for j, v in enumerate(row)
                  if i != j and v is not None and math.isfinite(v)]
        return (min(values), max(values)) if values else (0.0, 1.0)

    def strength(self, value: float) -> float:
        """Where a value sits on the colour scale, 0.15 (lowest) to 1 (highest); below 0 for negative correlations."""
        lo, hi = self.value_range()
        if self.signed and lo < 0:  # a diverging scale: the sign is the hue, the size the strength
            return max(-1.0, value / -lo) if value < 0 else min(1.0, value / hi) if hi > 0 else 0.0
        if hi - lo < 1e-12:
            return 1.0
        return 0.15 + 0.85 * min(1.0, max(0.0, (value - lo) / (hi - lo)))

    def _cell_style(self, value: float) -> Style:
        base, high, low = self._colors()
        if math.isnan(value):
            bg = base
        else:
            t = self.strength(value)
            bg = base.blend(high, t) if t >= 0 else base.blend(low, -t)
        fg = bg.get_contrast_text(1.0)
        return Style(color=fg.rich_color, bgcolor=bg.rich_color)

    def get_content_width(self, container, viewport) -> int:
        return self._label_width() + 1 + len(self.labels) * self.cell_width

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.labels) + 3 if self.labels else 1  # header, rows, a blank line and the legend

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
                text = "  -" if value is None or math.isnan(value) else f"{value:.3f}"
                out.append(text.center(cw), style=self._cell_style(float("nan") if value is None else value))
        out.append("\n\n")
        out.append("scale".rjust(w) + " ", style="bold")
        lo, hi = self.value_range()
        for value in self.legend_values(lo, hi, max(2, len(self.labels))):  # as wide as the matrix
            out.append(f"{value:.3f}".center(cw), style=self._cell_style(value))
        return out

    @staticmethod
    def legend_values(lo: float, hi: float, steps: int = 5) -> list[float]:
        return [lo] if hi - lo < 1e-12 else [lo + (hi - lo) * i / (steps - 1) for i in range(steps)]
