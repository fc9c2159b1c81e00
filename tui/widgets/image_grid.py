"""A grid of small images drawn with half blocks, each with a caption.

Why half blocks: `▀` with the top pixel as foreground and the bottom pixel as
background gives two pixel rows per text row in any truecolor terminal, over SSH
too, with no image protocol. Pixel colours are the image's own; the captions use
the theme's colours.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from rich.color import Color as RichColor
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

HALF = "▀"


@dataclass(frozen=True, eq=False)  # identity equality: comparing image arrays is ambiguous
class Tile:
    image: np.ndarray  # uint8 (C, H, W), C = 1 or 3
    caption: tuple[str, ...]  # lines under the image
    emphasis: bool = False  # e.g. label != prediction
    strong: int = 1  # how many caption lines read as the first (label, prediction): emphasised, not muted


def shrink(image: np.ndarray, width: int) -> np.ndarray:
    """Area-average an image (C, H, W) down so it is at most `width` pixels wide (integer factor)."""
    c, h, w = image.shape
    factor = max(1, -(-w // width))
    if factor == 1:
        return image
    h2, w2 = h // factor, w // factor
    view = image[:, : h2 * factor, : w2 * factor].astype(np.float32)
    return view.reshape(c, h2, factor, w2, factor).mean(axis=(2, 4)).round().astype(np.uint8)


def half_block_lines(image: np.ndarray) -> list[Text]:
    """An image (C, H, W) as text rows of ▀, two pixel rows per text row."""
    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
    _, h, w = rgb.shape
    if h % 2:
        rgb = np.concatenate([rgb, np.zeros((3, 1, w), rgb.dtype)], axis=1)
        h += 1
    styles: dict[tuple, Style] = {}
    lines = []
    for y in range(0, h, 2):
        line = Text(no_wrap=True)
        for x in range(w):
            top = tuple(int(v) for v in rgb[:, y, x])
            bottom = tuple(int(v) for v in rgb[:, y + 1, x])
            key = top + bottom
            if key not in styles:
                styles[key] = Style(color=RichColor.from_rgb(*top), bgcolor=RichColor.from_rgb(*bottom))
            line.append(HALF, style=styles[key])
        lines.append(line)
    return lines


class ImageGrid(Widget):
    """Tiles laid out left to right, as many per row as the width allows."""

    # styled in app.tcss
    COMPONENT_CLASSES: ClassVar[set[str]] = {"image-grid--caption", "image-grid--muted", "image-grid--wrong"}
    tiles: reactive[list[Tile]] = reactive(list, layout=True, always_update=True)

    def __init__(self, *, pixel_width: int = 16, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pixel_width = pixel_width

    def _cell_width(self) -> int:
        return max(self.pixel_width, 14) + 2

    def _per_row(self, width: int) -> int:
        return max(1, width // self._cell_width())

    def _tile_lines(self, tile: Tile) -> list[Text]:
        return half_block_lines(shrink(tile.image, self.pixel_width))

    def get_content_height(self, container, viewport, width: int) -> int:
        if not self.tiles:
            return 1
        rows = -(-len(self.tiles) // self._per_row(width))
        tile = self.tiles[0]
        return rows * (len(self._tile_lines(tile)) + len(tile.caption) + 1)

    def render(self) -> Text:
        if not self.tiles:
            return Text("")
        caption = self.get_component_rich_style("image-grid--caption")
        muted = self.get_component_rich_style("image-grid--muted")
        wrong = self.get_component_rich_style("image-grid--wrong")
        cw = self._cell_width()
        per_row = self._per_row(self.size.width or 80)
        lines: list[Text] = []
        for start in range(0, len(self.tiles), per_row):
            chunk = self.tiles[start:start + per_row]
            blocks = [self._tile_lines(t) for t in chunk]
            height = max(len(b) for b in blocks)
            captions = max(len(t.caption) for t in chunk)
            for row in range(height + captions):
                line = Text(no_wrap=True, overflow="crop")
                for tile, block in zip(chunk, blocks):
                    if row < height:
                        piece = block[row] if row < len(block) else Text(" " * len(block[0]))
                        line.append_text(piece)
                        line.append(" " * (cw - len(piece)))
                    else:
                        i = row - height
                        text = tile.caption[i] if i < len(tile.caption) else ""
                        style = (wrong if tile.emphasis else caption) if i < tile.strong else muted
                        line.append(text[: cw - 1].ljust(cw), style=style)
                lines.append(line)
            lines.append(Text(""))
        return Text("\n", no_wrap=True, overflow="crop").join(lines[:-1])
