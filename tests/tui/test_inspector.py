"""The sample inspector: Pilot tests against the tiny real store (conftest.tiny_store), each shown value checked
against engine.inspect; opened from the gallery, the leaderboard, the palette and a typed index; snapshots at
80x24 and 120x40 on fixed data (fixed_backend.py)."""
from __future__ import annotations

import numpy as np
import pytest
from fixed_backend import BENCHMARK_RUN, RUNS, FixedBackend
from test_snapshots import SIZES, before
from textual.widgets import DataTable, Input, Static
from tui_helpers import wait_for

import engine
from tui.app import PrunelabApp
from tui.screens.inspector import InspectorScreen, score_rows, trajectory
from tui.widgets.image_grid import ImageGrid

pytestmark = pytest.mark.anyio


def cells(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(r)] for r in range(table.row_count)]


async def inspected(app, pilot, index: int | None = None):
    """Wait for the inspector to show a report (of `index`, when given); return the report."""
    def shown() -> bool:
        report = getattr(app.screen, "report", None)
        return isinstance(app.screen, InspectorScreen) and report is not None and (index is None or
                                                                                   report.index == index)
    await wait_for(pilot, shown, timeout=60, what=f"the inspector on sample {index}")
    await pilot.pause()
    return app.screen.report


def expect_screen_shows(screen, report) -> None:
    """What the inspector draws, against engine.inspect's report of the same sample."""
    facts = str(screen.query_one("#inspector-facts", Static).render())
    assert f"sample #{report.index}" in facts and f"label     {report.label}" in facts
    assert f"predicted {report.predicted}" in facts
    verdict = f"{report.disagreeing} of its {len(report.neighbours)} nearest neighbours carry another label"
    assert verdict in facts and (("⚠" in facts) == report.disagrees)
    kept, selecting = report.kept_in()
    assert f"kept by {kept} of the {selecting} trials that selected" in facts
    rows = cells(screen.query_one("#inspector-scores", DataTable))
    assert rows == [list(r) for r in score_rows(report)]
    assert {r.method for r in report.scores} == {row[0] for row in rows} == {"loss", "grad_norm"}
    tiles = screen.query_one("#neighbours", ImageGrid).tiles
    assert [t.caption[0].split()[0] for t in tiles] == [f"#{n.index}" for n in report.neighbours]
    assert [t.emphasis for t in tiles] == [n.label != report.label for n in report.neighbours]
    trials = cells(screen.query_one("#inspector-trials", DataTable))
    assert [r[0] for r in trials] == [m.trial.label for m in report.trials]
    assert [r[3] for r in trials] == ["all (full data)" if m.kept is None else "kept" if m.kept else "pruned"
                                      for m in report.trials]


async def test_i_on_the_gallery_inspects_its_first_sample_and_follows_its_ranking(tiny_store):
    app = PrunelabApp(tiny_store.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, timeout=60, what="the runs")
        app.open_run(tiny_store.run_id, "gallery")
        await wait_for(pilot, lambda: len(app.screen.query_one(ImageGrid).tiles) == 12, timeout=60,
                       what="the gallery's tiles")
        name = app.screen.query_one("#score").value
        scores = app.backend.scores(tiny_store.run_id, name)
        order = np.argsort(-scores, kind="stable")
        await pilot.press("i")
        report = await inspected(app, pilot, int(order[0]))
        screen = app.screen
        expect_screen_shows(screen, engine.inspect(tiny_store.run_id, report.index, tracking_uri=tiny_store.uri))
        assert str(screen.query_one("#inspector-where", Static).render()) == f"1 of 600, highest {name} first"

        await pilot.press("right_square_bracket", "right_square_bracket")
        await inspected(app, pilot, int(order[2]))
        await pilot.press("left_square_bracket")
        await inspected(app, pilot, int(order[1]))

        await pilot.press("slash")  # an index typed in
        field = screen.query_one("#sample-index", Input)
        assert field.has_focus
        await pilot.press(*"586", "enter")
        report = await inspected(app, pilot, 586)
        expect_screen_shows(screen, engine.inspect(tiny_store.run_id, 586, tracking_uri=tiny_store.uri))
        assert "?" not in str(screen.query_one("#inspector-where", Static).render())[:1]

        await pilot.press("slash", *"600", "enter")  # out of range: said in place, the app stays up
        state = screen.query_one("#inspector-state", Static)
        await wait_for(pilot, lambda: "give an index in 0..599" in str(state.render()), what="the error")
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "GalleryScreen", what="back to the gallery")


async def test_i_on_the_leaderboard_ranks_by_the_highlighted_method():
    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, what="the runs")
        app.open_run(BENCHMARK_RUN.run_id, "leaderboard")
        await wait_for(pilot, lambda: app.screen.query_one("#leaderboard", DataTable).row_count > 2,
                       what="the leaderboard")
        table = app.screen.query_one("#leaderboard", DataTable)
        table.move_cursor(row=1)
        method = str(table.coordinate_to_cell_key((1, 0)).row_key.value)
        await pilot.press("i")
        await inspected(app, pilot)
        assert app.screen.ranking == method and app.screen.run_id == BENCHMARK_RUN.run_id
        # the fixed benchmark run has no per-sample scores: sample 0, said so
        assert app.screen.report.index == 0
        assert cells(app.screen.query_one("#inspector-scores", DataTable))[0][0] == "no per-sample scores in this run"


async def test_the_palette_inspects_the_current_run():
    from test_conventions import palette

    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, what="the runs")
        app.open_run(RUNS[0].run_id, "plots")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "PlotsScreen", what="the plots")
        await palette(app, pilot, "inspect", "Inspect a sample")
        report = await inspected(app, pilot, 0)
        assert report.run_id == RUNS[0].run_id and app.screen.run_id == RUNS[0].run_id


def test_trajectories_read_as_arrows_or_sparklines():
    assert trajectory([12.4, 40.0, 88.0]) == "12 → 40 → 88"
    assert trajectory([0.0, 20.0, 50.0, 70.0, 99.9, 10.0]) == "0 ▁▂▅▆█▁ 10"
    assert trajectory([float("nan"), 50.0]) == "- → 50"


@pytest.mark.parametrize("size", SIZES)
def test_inspector_snapshot(snap_compare, size):
    """Sample 586 of the fixed run: a 5 whose ten nearest neighbours are all 2s (and the surrogate says 2)."""
    def open_586(app):
        app.inspect_sample(RUNS[0].run_id, 586)

    assert snap_compare(PrunelabApp(backend=FixedBackend()), terminal_size=size, run_before=before(
        setup=open_586, until=lambda app: getattr(app.screen, "report", None) is not None))
