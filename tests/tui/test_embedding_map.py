"""The embedding map screen: the cursor's moves, the displayed subset, Pilot tests against the tiny real store
(a trial's kept samples as its kept_indices.npy says, the cursor into the inspector and back), the palette, and
snapshots at 80x24 and 120x40 on fixed data."""
from __future__ import annotations

import numpy as np
import pytest
from fixed_backend import RUNS, FixedBackend
from mlflow import MlflowClient
from test_snapshots import SIZES, before
from tui_helpers import settle, wait_for

import engine
from tui.app import PrunelabApp
from tui.screens.embedding_map import EmbeddingMapScreen, shown_points, step_towards
from tui.screens.inspector import InspectorScreen

pytestmark = pytest.mark.anyio

# a plus sign of points around the origin, and one far off to the upper right
CROSS = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.1], [-1.0, 0.0], [0.0, 1.0], [0.0, -2.0], [10.0, 9.0]])


def test_the_cursor_moves_to_the_nearest_point_that_way():
    shown = np.arange(len(CROSS))
    assert step_towards(CROSS, shown, 0, "right") == 1
    assert step_towards(CROSS, shown, 0, "left") == 3
    assert step_towards(CROSS, shown, 0, "up") == 4
    assert step_towards(CROSS, shown, 0, "down") == 5
    assert step_towards(CROSS, shown, 1, "right") == 2  # (3, 0.1) before (10, 9), both within 45° of right
    assert step_towards(CROSS, shown, 3, "left") == 3  # nothing further left: it stays
    assert step_towards(CROSS, shown, 5, "left") == 3  # none within 45° of left: the nearest on the left side
    assert step_towards(CROSS, np.array([0, 3, 6]), 0, "right") == 6  # only the shown points count
    # within 45° first: (1.5, 0) rather than the nearer (0.5, 0.9), which lies 61° off to the right (scaled)
    fan = np.array([[0.0, 0.0], [0.5, 0.9], [1.5, 0.0], [-1.0, -1.0]])
    assert step_towards(fan, np.arange(4), 0, "right") == 2
    assert step_towards(fan, np.arange(4), 0, "up") == 1


def test_large_sets_draw_a_fixed_subset_that_keeps_the_cursor():
    assert np.array_equal(shown_points(50), np.arange(50))
    first, again = shown_points(50_000, keep=12_345), shown_points(50_000, keep=12_345)
    assert np.array_equal(first, again) and 12_345 in first and len(first) in (4000, 4001)
    assert (np.diff(first) > 0).all()


def kept_indices(uri: str, trial_run_id: str, folder) -> np.ndarray:
    return np.load(MlflowClient(uri).download_artifacts(trial_run_id, "selection/kept_indices.npy", str(folder)))


async def test_the_map_marks_a_trial_and_opens_the_cursors_sample(tiny_store, tmp_path):
    app = PrunelabApp(tiny_store.uri)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, timeout=60, what="the runs")
        app.open_run(tiny_store.run_id, "gallery")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "GalleryScreen", what="the gallery")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EmbeddingMapScreen) and app.screen.emap is not None,
                       timeout=60, what="the map")
        screen = app.screen
        expected = engine.embedding_map(tiny_store.run_id, tracking_uri=tiny_store.uri)
        np.testing.assert_array_equal(screen.emap.projection, expected.projection)
        assert screen.cursor == 0 and len(screen.shown) == 600 and screen.kept is None
        drawn = screen.query_one("#map-plot").plt.build()
        assert "•" in drawn and "◉" in drawn and "×" not in drawn

        await pilot.press("right_square_bracket")  # the first trial with a selection
        trial = screen.trials[0]
        kept = kept_indices(tiny_store.uri, trial.run_id, tmp_path)
        assert np.array_equal(np.flatnonzero(screen.kept), np.sort(kept)) and screen.kept.sum() == 300
        assert f"trial 1/2: {trial.label} · kept 300 •, pruned 300 ×" in str(screen.query_one("#map-info").render())
        assert "×" in screen.query_one("#map-plot").plt.build()
        await pilot.press("right_square_bracket", "right_square_bracket")  # the second, then none again
        assert screen.trial == -1 and screen.kept is None

        path = [0]
        for key in ("right", "right", "up", "left", "down"):
            await pilot.press(key)
            path.append(step_towards(expected.projection, screen.shown, path[-1], key))
            assert screen.cursor == path[-1]
        assert len(set(path)) > 2  # it moved
        assert f"◉ #{screen.cursor}  label" in str(screen.query_one("#map-cursor").render())

        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, InspectorScreen) and app.screen.report is not None,
                       timeout=60, what="the inspector")
        assert app.screen.report.index == path[-1]
        depth = len(app.screen_stack)
        await pilot.press("right_square_bracket")  # the next index, then back to the map with the cursor on it
        await wait_for(pilot, lambda: app.screen.report.index == (path[-1] + 1) % 600, what="the next sample")
        await pilot.press("e")
        await wait_for(pilot, lambda: app.screen is screen, what="back to the same map")
        assert len(app.screen_stack) == depth - 1 and screen.cursor == (path[-1] + 1) % 600


async def test_the_palette_opens_the_map_and_says_when_a_run_has_none():
    from test_conventions import palette

    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, what="the runs")
        app.open_run(RUNS[1].run_id, "plots")  # a run without a map
        await wait_for(pilot, lambda: type(app.screen).__name__ == "PlotsScreen", what="the plots")
        await palette(app, pilot, "embedding", "Embedding map")
        await wait_for(pilot, lambda: isinstance(app.screen, EmbeddingMapScreen), what="the map")
        info = app.screen.query_one("#map-info")
        await wait_for(pilot, lambda: "No embedding map in this run" in str(info.render()), what="the notice")
        assert app.screen.run_id == RUNS[1].run_id


@pytest.mark.parametrize("size", SIZES)
def test_embedding_map_snapshot(snap_compare, size):
    """The fixed run's map with its first trial (grad_norm hardest, keep 0.5) marked, the cursor moved once."""
    loaded = before(setup=lambda app: app.open_run(RUNS[0].run_id, "map"),
                    until=lambda app: getattr(app.screen, "emap", None) is not None)

    async def run_before(pilot) -> None:
        await loaded(pilot)
        await pilot.press("right_square_bracket", "right")
        await settle(pilot.app, pilot, pause=0.1)

    assert snap_compare(PrunelabApp(backend=FixedBackend()), terminal_size=size, run_before=run_before)
