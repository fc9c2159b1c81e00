"""engine/figures.py: the benchmark's rank heatmap reads (issue 26, item 9): its title fits the figure, and every
rank is written in the colour that contrasts most with its cell."""
import matplotlib.pyplot as plt
import pytest

from engine.figures import rank_heatmap, text_color
from engine.scoring.registry import SCORERS
from engine.selection.registry import STRATEGIES


def relative_luminance(rgba) -> float:
    """WCAG 2.x, written out here independently of the engine's."""
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgba[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a, b) -> float:
    hi, lo = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.fixture
def ranked_rows():
    """The rows of a benchmark of every registered method at four keep ratios (ranks 1..M at each ratio)."""
    methods = list(dict.fromkeys([f"{s}/hardest" for s in SCORERS] + [f"el2n/{s}" for s in STRATEGIES]))
    rows = []
    for shift, ratio in enumerate((0.3, 0.5, 0.7, 0.9)):
        for i, method in enumerate(methods):
            rank = float((i + 7 * shift) % len(methods) + 1)
            rows.append({"method": method, "ratio": ratio, "rank": rank, "significant": rank % 3 == 0})
    return rows


def test_every_rank_is_written_in_the_colour_that_reads_on_its_cell(ranked_rows):
    fig = rank_heatmap(ranked_rows, "mnist-mini / mlp: 34 methods, 3 seed(s)")
    ax = fig.axes[0]
    image = ax.images[0]
    assert len(ax.texts) == len(ranked_rows)
    white, black = (1, 1, 1), (0, 0, 0)
    for text in ax.texts:
        cell = image.cmap(image.norm(float(text.get_text().rstrip("*"))))
        chosen = white if text.get_color() == "white" else black
        other = black if chosen is white else white
        assert contrast(chosen, cell) >= contrast(other, cell), (text.get_text(), cell)
        assert contrast(chosen, cell) >= 4.5  # WCAG AA for normal text, on every viridis colour
    rank_one = next(t for t in ax.texts if t.get_text().rstrip("*") == "1")
    assert rank_one.get_color() == "black"  # the best rank sits on viridis_r's yellow
    plt.close(fig)


def test_the_title_fits_inside_the_figure(ranked_rows):
    long = "folder:/data/a-rather-long-path/to/images / timm:resnet10t: 34 methods, 3 seed(s)"
    for rows in (ranked_rows, [r for r in ranked_rows if r["method"] in ("loss/hardest", "el2n/ccs")]):
        fig = rank_heatmap(rows, long)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        title = (fig._suptitle or fig.axes[0].title).get_window_extent(renderer)  # wherever the figure puts it
        box = fig.bbox
        assert box.x0 <= title.x0 and title.x1 <= box.x1 and title.y1 <= box.y1, (title, box)
        plt.close(fig)


def test_text_color_picks_black_on_light_and_white_on_dark():
    assert text_color((1.0, 1.0, 0.0, 1.0)) == "black" and text_color((0.27, 0.0, 0.33, 1.0)) == "white"
