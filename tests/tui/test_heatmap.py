"""The overlap heatmap: three decimals, a colour scale over the matrix's own range with a legend, feedback for `e`."""
from __future__ import annotations

import pytest
from fixed_backend import RUNS, FixedBackend
from textual.app import App
from textual.color import Color
from tui_helpers import wait_for

from tui.app import PrunelabApp
from tui.widgets.heatmap import Heatmap

pytestmark = pytest.mark.anyio

MATRIX = [[1.0, 0.94, 0.9991], [0.94, 1.0, 0.97], [0.9991, 0.97, 1.0]]


def distance(a, b) -> float:
    ca, cb = Color.from_rich_color(a.bgcolor), Color.from_rich_color(b.bgcolor)
    return abs(ca.r - cb.r) + abs(ca.g - cb.g) + abs(ca.b - cb.b)


async def test_close_values_get_distinct_colours_three_decimals_and_a_legend():
    app = App()
    async with app.run_test(size=(80, 24)) as pilot:
        heatmap = Heatmap()
        await app.screen.mount(heatmap)
        heatmap.show(["loss", "grad_norm", "el2n"], MATRIX, signed=True)
        await pilot.pause()
        lines = heatmap.render().plain.splitlines()
        assert "0.999" in lines[1] and "0.940" in lines[1] and "1.00 " not in lines[1].replace("1.000", "")
        assert heatmap.value_range() == (0.94, 0.9991)  # off the diagonal only
        low, high = heatmap._cell_style(0.94), heatmap._cell_style(0.9991)
        base = Color.parse(app.theme_variables["surface"])
        full = Color.parse(app.theme_variables["primary"])
        span = abs(full.r - base.r) + abs(full.g - base.g) + abs(full.b - base.b)
        assert distance(low, high) > 0.7 * span  # lowest and highest: most of the way from surface to primary
        assert lines[-1].split() == ["scale", "0.940", "0.970", "0.999"]  # the legend spans the same range


async def test_e_with_one_score_epoch_says_so():
    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.query("RunTable") and app.screen.query_one("RunTable").runs,
                       what="the runs")
        app.open_run(RUNS[0].run_id, "overlap")
        await wait_for(pilot, lambda: app.screen.query_one(Heatmap).matrix, what="the heatmap")
        assert app.screen.epochs == [1]
        await pilot.press("e")
        await wait_for(pilot, lambda: any("one surrogate epoch only (e1)" in n.message
                                          for n in app._notifications), what="the notice")


def test_compare_gives_eight_series_eight_colours():
    """Four runs of two methods each, with their full-data lines: no colour drawn twice (issue 18, item 5)."""
    from tui.screens.plots import draw_accuracy_vs

    class Recorder:  # plotext's calls, recorded
        def __init__(self):
            self.colors = []

        def plot(self, xs, ys, color=None, **kwargs):
            self.colors.append(color)

        scatter = plot

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    rows = [{"method": m, "strategy": "hardest", "ratio": r, "epoch": 1, "mean_accuracy": 0.5 + r / 4,
             "std_accuracy": 0.01, "seeds": 2, "failed": 0} for m in ("loss", "el2n") for r in (0.3, 0.7)]
    plt = Recorder()
    drawn = draw_accuracy_vs(plt, [(f"run{i}: ", rows) for i in range(4)], "ratio", "keep ratio", "t")
    assert len(drawn) == 8 and len(plt.colors) == 8 and len(set(map(str, plt.colors))) == 8


async def test_compare_with_one_score_epoch_says_so_instead_of_plotting_it():
    from tui.screens.compare import CompareScreen

    app = PrunelabApp(backend=FixedBackend())  # its runs took scores at surrogate epoch 1 only
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.query("RunTable") and app.screen.query_one("RunTable").runs,
                       what="the runs")
        app.push_screen(CompareScreen([RUNS[0].run_id, RUNS[1].run_id]))
        await wait_for(pilot, lambda: app.screen.query_one("#cmp-table").row_count == 8, what="the comparison")
        plot = app.screen.query_one("#cmp-plot-epoch")
        assert "one score epoch only (e1)" in plot.plt.build()
        assert "one score epoch" not in app.screen.query_one("#cmp-plot-ratio").plt.build()
