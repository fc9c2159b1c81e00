"""A run's title line: parts joined by " · ", wrapped between parts, never inside one.

Why: at 80 columns a run's title (experiment, kind, data, id, status, full and
best pruned accuracy) needs two lines, and a plain wrap splits "best pruned
51.2%" across them.
"""
from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Static

SEP = " · "


def wrap_parts(parts: list[str], width: int, sep: str = SEP) -> list[str]:
    """Lines of parts joined by sep, each at most `width` cells unless one part alone is wider; a line that
    continues the title starts with the separator ("· best pruned 51.2%", "vs quick-b ...")."""
    lines: list[str] = []
    for part in parts:
        if lines and cell_len(lines[-1] + sep + part) <= width:
            lines[-1] += sep + part
        else:
            lines.append(sep.lstrip() + part if lines else part)
    return lines or [""]


class TitleLine(Static):
    """A Static whose text is parts joined by `sep` (" · ", or Compare's " vs "); `update` takes that text."""

    def __init__(self, text: str = "", sep: str = SEP, **kwargs) -> None:
        super().__init__(markup=False, **kwargs)
        self.title_text = text
        self.sep = sep

    def update(self, text: str = "") -> None:  # type: ignore[override]
        self.title_text = str(text)
        self.refresh(layout=True)

    def _lines(self, width: int) -> list[str]:
        return wrap_parts(self.title_text.split(self.sep), width, self.sep)

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> Text:
        return Text("\n".join(self._lines(self.content_size.width)))
