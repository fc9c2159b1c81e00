"""The Leaderboard screen on a real tiny benchmark run, and accuracy vs samples seen on a real tiny dynamic run.

One store per module: a benchmark (mlp on 400 mnist-mini samples, 1 epoch, loss and el2n against random, keep
0.3 and 0.7, seeds 0 and 1: 14 trials) and a dynamic run (InfoBatch beside full data, 4 epochs, the last one on all data).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pytest
from textual.color import Color
from textual.command import CommandList
from textual.widgets import DataTable
from tui_helpers import store_uri, wait_for

from engine import names
from tui.app import PrunelabApp

pytestmark = pytest.mark.anyio

SMALL = ["model=mlp", "data.train_size=400", "data.test_size=300", "train.epochs=1", "surrogate.epochs=1",
         "sweep.score_epochs=[1]"]


@dataclass
class Runs:
    uri: str
    benchmark: str
    dynamic: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    from engine.api import load_config, run

    workdir = tmp_path_factory.mktemp("leaderboard-store")
    uri = store_uri(workdir)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        bench = run(load_config("benchmark-mnist", SMALL + [
            "name=tui-bench", 'benchmark.methods=["loss", "el2n"]', "benchmark.keep_ratios=[0.3, 0.7]",
            "benchmark.seeds=[0, 1]"]), tracking_uri=uri)
        dyn = run(load_config("quick", SMALL + ["kind=dynamic", "name=tui-dyn", "train.epochs=4", "dynamic.delta=0.75",
                                                "dynamic.seeds=[0]"]), tracking_uri=uri)
    finally:
        os.chdir(cwd)
    assert bench.status == dyn.status == "FINISHED"
    return Runs(uri, bench.run_id, dyn.run_id)


def grid(app) -> tuple[list[str], dict[tuple[str, str], object]]:
    table = app.screen.query_one("#leaderboard", DataTable)
    order = [str(k.value) for k in table.rows]
    return order, {(m, str(c.value)): table.get_cell(m, c) for m in order for c in table.columns}


async def test_leaderboard_shows_benchmark_json_sorts_and_is_in_the_palette(runs):
    from tui.commands import PrunelabCommands
    from tui.screens.leaderboard import LeaderboardScreen, cell_text

    app = PrunelabApp(runs.uri)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs and len(app.recent_runs) == 2, what="the runs")
        table = app.screen.query_one("RunTable")
        table.move_cursor(row=table.get_row_index(runs.dynamic))
        await pilot.press("l")  # not a benchmark run: a warning, no screen
        await wait_for(pilot, lambda: any("Only a benchmark run" in n.message for n in app._notifications),
                       what="the warning")
        assert not isinstance(app.screen, LeaderboardScreen)
        table.move_cursor(row=table.get_row_index(runs.benchmark))
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LeaderboardScreen) and app.screen.board,
                       what="the leaderboard")
        report = app.backend.benchmark(runs.benchmark)
        rows = {(r["method"], f"{r['ratio']:g}"): r for r in report["rows"] if "rank" in r}
        assert len(rows) == 3 * 2 and set(report["average_ranks"]) == {"random", "loss/hardest", "el2n/hardest"}

        order, cells = grid(app)
        assert order == list(report["average_ranks"])  # best average rank first, as the engine ranks them
        for (method, ratio), row in rows.items():
            text = str(cells[(method, ratio)])
            assert text == cell_text(row)
            assert f"{row['mean_accuracy'] * 100:.1f}" in text and f"#{row['rank']:g}" in text
            assert ("★" in text) == row["winner"] and ("*" in text) == row["significant"]
            if method != "random":
                assert f"{row['diff'] * 100:+.2f}" in text
        for method in order:
            assert str(cells[(method, "rank")]) == f"{report['average_ranks'][method]:.2f}"
        # the colour: the largest |difference| is the scale's end; its cell is the theme's error/success colour
        worst = max((r for r in rows.values() if r["method"] != "random"), key=lambda r: abs(r["diff"]))
        end = Color.parse(app.theme_variables["error" if worst["diff"] < 0 else "success"])
        style = cells[(worst["method"], f"{worst['ratio']:g}")].style
        assert Color.from_rich_color(style.bgcolor) == end
        random_style = cells[("random", "0.3")].style
        assert Color.from_rich_color(random_style.bgcolor) == Color.parse(app.theme_variables["surface"])
        lines = str(app.screen.query_one("#leaderboard-status").render())
        assert f"critical difference {report['critical_difference']:.2f}" in lines
        assert "loss/hardest" in lines or all(math.isnan(v) for v in report["crossover"].values())

        for ratio in ("0.3", "0.7"):  # s: by each ratio's accuracy in turn, then back to the average rank
            await pilot.press("s")
            by_accuracy = sorted(report["average_ranks"], key=lambda m: (-rows[(m, ratio)]["mean_accuracy"],
                                                                         report["average_ranks"][m], m))
            assert grid(app)[0] == by_accuracy and app.screen.sort_key == float(ratio)
        await pilot.press("s")
        assert grid(app)[0] == list(report["average_ranks"])

        await pilot.press("escape")  # the palette: the screen, and a line per benchmark run
        provider = PrunelabCommands(app.screen)
        await provider.startup()
        found = [c.name for c in provider.commands()]
        assert found.count("Leaderboard") == 1
        assert [n for n in found if n.startswith("Leaderboard of")] == [f"Leaderboard of tui-bench ({runs.benchmark[:8]})"]
        await pilot.press("ctrl+p", *"leaderboard")
        await wait_for(pilot, lambda: str(app.screen.query_one(CommandList).get_option_at_index(0).prompt)
                       .startswith("Leaderboard"), timeout=10, what="the palette's hit")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, LeaderboardScreen), what="the palette's leaderboard")
        assert app.screen.run_id == runs.benchmark


async def test_plots_of_a_dynamic_run_draw_accuracy_against_samples_seen(runs):
    from textual.widgets import TabbedContent

    from tui.screens.plots import PlotsScreen

    app = PrunelabApp(runs.uri)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, what="the runs")
        curves = app.backend.seen_curves(runs.dynamic)
        client = app.backend._track().client
        children = {c.data.tags["method"]: c.info.run_id for c in app.backend._track().children(runs.dynamic)}
        assert set(curves) == set(children) == {names.FULL, "infobatch"}
        assert [x for x, _ in curves[names.FULL]] == [400.0, 800.0, 1200.0, 1600.0]  # every sample, every epoch
        seen = [x for x, _ in curves["infobatch"]]
        per_epoch = [b - a for a, b in zip([0.0, *seen], seen)]
        assert per_epoch[0] == 400 and per_epoch[3] == 400 and max(per_epoch[1:3]) < 400  # 2 and 3 pruned
        for method, child in children.items():
            accuracy = [m.value for m in sorted(client.get_metric_history(child, "test_accuracy"),
                                                key=lambda m: m.step)]
            assert [a for _, a in curves[method]] == pytest.approx(accuracy, abs=1e-12)

        app.open_run(runs.dynamic, "plots")
        await wait_for(pilot, lambda: isinstance(app.screen, PlotsScreen)
                       and app.screen.query_one("#plot-tabs", TabbedContent).get_tab("tab-seen").display,
                       what="the samples-seen tab")
        await pilot.press("5")
        tabs = app.screen.query_one("#plot-tabs", TabbedContent)
        assert tabs.active == "tab-seen"
        drawn = app.screen.query_one("#plot-seen").plt.build()
        assert "samples seen" in drawn and "full data" in drawn and "infobatch" in drawn
        assert f"{curves['infobatch'][-1][1] * 100:.1f}% at {seen[-1]:,.0f}" in drawn
