"""The Leaderboard screen and accuracy vs samples seen.

The grid, its colours, the sort, the `l` key and the palette are checked on the benchmark.json of a real
benchmark-mnist run on this CPU, 8 methods (tests/tui/fixtures/benchmark.json, through the fixed backend); the reading path on a
real store (`Backend.benchmark`, `Backend.seen_curves`) on one module store of two real tiny runs: a benchmark (mlp
on 300 mnist-mini samples, 1 epoch, loss against random at keep 0.5, seed 0, 2 trials) and a dynamic run
(InfoBatch beside full data, 4 epochs on 300 samples, the last one on all data).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest
from fixed_backend import BENCHMARK_RUN, FIXTURES, RUNS, FixedBackend
from textual.color import Color
from textual.command import CommandList
from textual.widgets import DataTable
from tui_helpers import wait_for

from engine import names
from tui.app import PrunelabApp

pytestmark = pytest.mark.anyio

SMALL = ["model=mlp", "data.test_size=300", "train.epochs=1", "surrogate.epochs=1", "sweep.score_epochs=[1]"]


@dataclass
class Runs:
    uri: str
    benchmark: str
    dynamic: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fresh_store) -> Runs:
    from engine.api import load_config, run

    workdir = tmp_path_factory.mktemp("leaderboard-store")
    uri = fresh_store(workdir / "mlruns" / "mlflow.db")
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        bench = run(load_config("benchmark-mnist", SMALL + [
            "name=tui-bench", "data.train_size=300", 'benchmark.methods=["loss"]', "benchmark.keep_ratios=[0.5]",
            "benchmark.seeds=[0]", "benchmark.full_data=false"]), tracking_uri=uri)
        dyn = run(load_config("quick", SMALL + ["kind=dynamic", "name=tui-dyn", "data.train_size=300",
                                                "train.epochs=4", "dynamic.delta=0.75", "dynamic.seeds=[0]"]),
                  tracking_uri=uri)
    finally:
        os.chdir(cwd)
    assert bench.status == dyn.status == "FINISHED"
    return Runs(uri, bench.run_id, dyn.run_id)


class WithBenchmark(FixedBackend):
    """The fixed runs with the benchmark run listed first (the snapshots' backend leaves it out of the list)."""

    def list_runs(self):
        return [BENCHMARK_RUN, *RUNS]


def grid(app) -> tuple[list[str], dict[tuple[str, str], object]]:
    table = app.screen.query_one("#leaderboard", DataTable)
    order = [str(k.value) for k in table.rows]
    return order, {(m, str(c.value)): table.get_cell(m, c) for m in order for c in table.columns}


async def test_leaderboard_shows_benchmark_json_sorts_and_is_in_the_palette():
    from tui.commands import PrunelabCommands
    from tui.screens.leaderboard import LeaderboardScreen, cell_text

    report = json.loads((FIXTURES / "benchmark.json").read_text())
    rows = {(r["method"], f"{r['ratio']:g}"): r for r in report["rows"] if "rank" in r}
    app = PrunelabApp(backend=WithBenchmark())
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, what="the runs")
        table = app.screen.query_one("RunTable")
        table.move_cursor(row=table.get_row_index(RUNS[0].run_id))
        await pilot.press("l")  # not a benchmark run: a warning, no screen
        await wait_for(pilot, lambda: any("Only a benchmark run" in n.message for n in app._notifications),
                       what="the warning")
        assert not isinstance(app.screen, LeaderboardScreen)
        table.move_cursor(row=table.get_row_index(BENCHMARK_RUN.run_id))
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LeaderboardScreen) and app.screen.board,
                       what="the leaderboard")

        order, cells = grid(app)
        assert len(order) == 9 and order == list(report["average_ranks"])  # best average rank first
        for (method, ratio), row in rows.items():
            text = str(cells[(method, ratio)])
            assert text == cell_text(row)
            assert f"{row['mean_accuracy'] * 100:.1f}" in text and f"#{row['rank']:g}" in text
            assert ("★" in text) == row["winner"] and ("*" in text) == row["significant"]
            if method != "random":
                assert f"{row['diff'] * 100:+.2f}" in text
        for method in order:
            assert str(cells[(method, "rank")]) == f"{report['average_ranks'][method]:.2f}"
        # the diverging scale over the grid's own range: the largest |difference| gets the end colour, random
        # (no difference) the surface, and a cell halfway is the halfway blend
        theme = app.theme_variables
        surface, error, success = (Color.parse(theme[k]) for k in ("surface", "error", "success"))
        span = max(abs(r["diff"]) for r in rows.values())
        for (method, ratio), row in rows.items():
            expected = surface.blend(error if row["diff"] < 0 else success, abs(row["diff"]) / span)
            assert Color.from_rich_color(cells[(method, ratio)].style.bgcolor) == expected, (method, ratio)
        assert Color.from_rich_color(cells[("loss/hardest", "0.3")].style.bgcolor) == error  # the worst
        lines = str(app.screen.query_one("#leaderboard-status").render())
        assert f"critical difference {report['critical_difference']:.2f}" in lines and "Friedman p = 0.988" in lines
        assert "forgetting/hardest ≈ 0.61" in lines and "full data 83.4% ± 0.6" in lines

        for ratio in ("0.3", "0.7"):  # s: by each ratio's accuracy in turn, then back to the average rank
            await pilot.press("s")
            by_accuracy = sorted(report["average_ranks"], key=lambda m: (-rows[(m, ratio)]["mean_accuracy"],
                                                                         report["average_ranks"][m], m))
            assert grid(app)[0] == by_accuracy and app.screen.sort_key == float(ratio)
        assert grid(app)[0][0] == "aum/hardest" and grid(app)[0][-1] == "el2n/moderate"  # at keep 0.7
        await pilot.press("s")
        assert grid(app)[0] == list(report["average_ranks"])

        await pilot.press("escape")  # the palette: the screen once, and a line per benchmark run
        provider = PrunelabCommands(app.screen)
        await provider.startup()
        found = [c.name for c in provider.commands()]
        assert found.count("Leaderboard") == 1
        assert [n for n in found if n.startswith("Leaderboard of")] == ["Leaderboard of benchmark-mnist (e5f60718)"]
        await pilot.press("ctrl+p", *"leaderboard")
        await wait_for(pilot, lambda: str(app.screen.query_one(CommandList).get_option_at_index(0).prompt)
                       .startswith("Leaderboard"), timeout=10, what="the palette's hit")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, LeaderboardScreen), what="the palette's leaderboard")
        assert app.screen.run_id == BENCHMARK_RUN.run_id


async def test_leaderboard_reads_a_real_benchmark_run(runs):
    from engine.store.tracking import tracker
    from tui.screens.leaderboard import LeaderboardScreen, cell_text

    logged = json.loads(tracker(runs.uri).load_text(runs.benchmark, names.BENCHMARK_JSON), parse_constant=float)
    app = PrunelabApp(runs.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        app.open_run(runs.dynamic, "leaderboard")  # a dynamic run has none: the screen says so
        await wait_for(pilot, lambda: "No leaderboard for this dynamic run" in
                       str(app.screen.query_one("#leaderboard-status").render()), what="the no-benchmark line")
        app.open_run(runs.benchmark, "leaderboard")
        await wait_for(pilot, lambda: isinstance(app.screen, LeaderboardScreen) and app.screen.board,
                       what="the leaderboard")
        order, cells = grid(app)
        assert sorted(order) == ["loss/hardest", "random"]
        for row in (r for r in logged["rows"] if "rank" in r):
            assert str(cells[(row["method"], "0.5")]) == cell_text(row)


async def test_plots_of_a_dynamic_run_draw_accuracy_against_samples_seen(runs):
    from textual.widgets import TabbedContent

    from engine.store.tracking import tracker
    from tui.screens.plots import PlotsScreen

    app = PrunelabApp(runs.uri)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, what="the runs")
        curves = app.backend.seen_curves(runs.dynamic)
        track = tracker(runs.uri)
        client = track.client
        children = {c.data.tags["method"]: c.info.run_id for c in track.children(runs.dynamic)}
        assert set(curves) == set(children) == {names.FULL, "infobatch"}
        assert [x for x, _ in curves[names.FULL]] == [300.0, 600.0, 900.0, 1200.0]  # every sample, every epoch
        seen = [x for x, _ in curves["infobatch"]]
        per_epoch = [b - a for a, b in zip([0.0, *seen], seen)]
        assert per_epoch[0] == 300 and per_epoch[3] == 300 and max(per_epoch[1:3]) < 300  # 2 and 3 pruned
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


async def test_the_palettes_leaderboard_finds_a_benchmark_still_running():
    """Launched from the form, a benchmark run is on the monitor, not yet in the runs list the palette read: the
    palette's Leaderboard opens it (its screen says it has not finished) rather than "no benchmark run yet"."""
    import dataclasses

    from tui.commands import PrunelabCommands
    from tui.screens.leaderboard import LeaderboardScreen

    class Running(FixedBackend):
        def progress(self):
            live, ended = super().progress()
            return [dataclasses.replace(live, run_id=BENCHMARK_RUN.run_id, kind="benchmark"), ended]

        def run_row(self, run_id):
            return dataclasses.replace(super().run_row(run_id), status=names.RUNNING)

        def benchmark(self, run_id):
            return None  # benchmark.json comes at the end

    app = PrunelabApp(backend=Running())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, what="the runs")
        assert not [r for r in app.recent_runs if r.kind == "benchmark"]  # the runs list has none
        provider = PrunelabCommands(app.screen)
        await provider.startup()
        next(c for c in provider.screen_commands() if c.name == "Leaderboard").run()
        await wait_for(pilot, lambda: isinstance(app.screen, LeaderboardScreen), what="the leaderboard")
        assert app.screen.run_id == BENCHMARK_RUN.run_id
        status = app.screen.query_one("#leaderboard-status")
        await wait_for(pilot, lambda: "has not finished yet" in str(status.render()), what="why it is empty")
        assert not [n for n in app._notifications if "No benchmark run" in n.message]
