"""Snapshots of the main screens at 80x24 and 120x40, on fixed data (tests/tui/fixed_backend.py).

Fixed data, a fixed clock and a pinned time zone keep run ids, durations and
start times the same on every machine. Update after a deliberate UI change with
`pytest tests/tui/test_snapshots.py --snapshot-update`, and look at the report.
"""
from __future__ import annotations

import pytest
from fixed_backend import RUNS, FixedBackend
from tui_helpers import settle, wait_for

from tui.app import PrunelabApp

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def make_app() -> PrunelabApp:
    return PrunelabApp(backend=FixedBackend())


def before(*keys: str, until=None, setup=None):
    """A run_before hook: optional setup(app), key presses, then wait for workers and `until(app)`."""
    async def run_before(pilot) -> None:
        app = pilot.app
        await wait_for(pilot, lambda: app.screen.query("RunTable") and app.screen.query_one("RunTable").runs,
                       what="the runs")
        if setup is not None:
            setup(app)
        if keys:
            await pilot.press(*keys)
        if until is not None:
            await wait_for(pilot, lambda: until(app), timeout=60, what="the screen to fill")
        await settle(app, pilot, pause=0.1)

    return run_before


def open_run(view: str):
    return lambda app: app.open_run(RUNS[0].run_id, view)


@pytest.mark.parametrize("size", SIZES)
def test_runs(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, run_before=before())


def test_runs_light_theme(snap_compare):
    def light(app):
        app.theme = "textual-light"

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=before(setup=light))


@pytest.mark.parametrize("size", SIZES)
def test_monitor(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size,
                        run_before=before("m", until=lambda app: len(app.screen.query("ProgressPanel")) == 2))


@pytest.mark.parametrize("size", SIZES)
def test_new_experiment(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size,
                        run_before=before("n", until=lambda app: getattr(app.screen, "preview", None) is not None))


@pytest.mark.parametrize("size", SIZES)
def test_plots(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size,
                        run_before=before(setup=open_run("plots"),
                                          until=lambda app: app.screen.query_one("#summary").row_count == 5))


@pytest.mark.parametrize("size", SIZES)
def test_overlap(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size,
                        run_before=before(setup=open_run("overlap"),
                                          until=lambda app: app.screen.query_one("Heatmap").matrix))


@pytest.mark.parametrize("size", SIZES)
def test_gallery(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size,
                        run_before=before(setup=open_run("gallery"),
                                          until=lambda app: app.screen.query_one("ImageGrid").tiles))


@pytest.mark.parametrize("size", SIZES)
def test_compare(snap_compare, size):
    def compare(app):
        from tui.screens.compare import CompareScreen

        app.push_screen(CompareScreen([RUNS[0].run_id, RUNS[1].run_id]))

    assert snap_compare(make_app(), terminal_size=size,
                        run_before=before(setup=compare,
                                          until=lambda app: app.screen.query_one("#cmp-table").row_count == 8))


def test_help(snap_compare):
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=before("question_mark"))


@pytest.mark.parametrize("size", SIZES)
def test_leaderboard(snap_compare, size):
    from fixed_backend import BENCHMARK_RUN

    def leaderboard(app):
        app.open_run(BENCHMARK_RUN.run_id, "leaderboard")

    assert snap_compare(make_app(), terminal_size=size,
                        run_before=before(setup=leaderboard,
                                          until=lambda app: app.screen.query_one("#leaderboard").row_count > 0))
