"""Pilot tests of each screen against a tiny real store (see conftest.tiny_store)."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import sys

import numpy as np
import pytest
from textual.widgets import DataTable, Input, Static
from tui_helpers import TINY, settle, wait_for

from engine.store.events import RunStarted
from tui.app import PrunelabApp
from tui.widgets.heatmap import Heatmap
from tui.widgets.image_grid import ImageGrid
from tui.widgets.run_table import RunTable

pytestmark = pytest.mark.anyio  # anyio's pytest plugin runs the async tests (on asyncio)


def runs_table(app) -> RunTable:
    return app.screen.query_one(RunTable)


async def open_runs(app, pilot, count: int = 2) -> RunTable:
    await wait_for(pilot, lambda: len(runs_table(app).runs) >= count, what="the runs to load")
    return runs_table(app)


async def open_view(app, pilot, run_id: str, key: str) -> None:
    """From the runs table, as a user: put the cursor on the run, press the view's key."""
    table = await open_runs(app, pilot)
    table.move_cursor(row=table.get_row_index(run_id))
    await pilot.press(key)


async def test_runs_screen_lists_filters_and_sorts(tiny_store):
    app = PrunelabApp(tiny_store.uri)
    async with app.run_test(size=(120, 30)) as pilot:
        table = await open_runs(app, pilot)
        run = table.runs[tiny_store.run_id]
        assert (run.status, run.kind, run.dataset, run.model) == ("FINISHED", "prune", "mnist-mini", "mlp")
        assert run.best_accuracy is not None and 0 < run.best_accuracy <= 1
        assert run.trials_done == run.trials == 3  # full data + 2 methods
        assert table.row_count == 2
        # newest first by default
        assert table.current_run_id == tiny_store.other_id

        await pilot.press("slash")
        assert app.screen.query_one("#filter", Input).has_focus
        await pilot.press(*"tui-a")
        assert [r.run_id for r in table.visible()] == [tiny_store.run_id]
        assert table.row_count == 1
        await pilot.press("escape")
        assert table.row_count == 2 and table.has_focus

        await pilot.press("s")  # next sort column after "started" (the default)
        assert table.sort_key == "dataset"
        await pilot.press("S")
        assert table.sort_key == "dataset"
        # clicking a header sorts by it; clicking again reverses
        await pilot.click(RunTable, offset=(12, 0))
        key = table.sort_key
        reverse = table.sort_reverse
        await pilot.click(RunTable, offset=(12, 0))
        assert table.sort_key == key and table.sort_reverse != reverse


async def test_killed_run_shows_killed(tmp_path, fresh_store):
    """A run whose process died without a word (SIGKILL) reads KILLED, in the table and in MLflow."""
    from engine.api import load_config
    from engine.runner.runner import create_parent_run
    from engine.store.tracking import tracker


    uri = fresh_store(tmp_path / "mlruns" / "mlflow.db")
    run_id = create_parent_run(load_config("quick", TINY + ["name=killed"]), uri)
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    track = tracker(uri, os.getcwd())
    progress = track.store.progress_file(run_id)
    progress.parent.mkdir(parents=True, exist_ok=True)
    progress.write_text(RunStarted(run_id=run_id, experiment="killed", kind="prune", trials=3, pid=dead.pid,
                                   host=socket.gethostname()).to_json() + "\n")
    assert track.get_run(run_id).info.status == "RUNNING"

    app = PrunelabApp(uri)
    async with app.run_test(size=(100, 24)) as pilot:
        table = await open_runs(app, pilot, 1)
        assert table.runs[run_id].status == "KILLED"
        # no scores: the overlap view says so instead of drawing a matrix
        await pilot.press("o")
        await wait_for(pilot, lambda: "no overlap for this run" in str(
            app.screen.query_one("#overlap-state", Static).render()), what="the no-overlap message")
        assert not app.screen.query_one(Heatmap).display
    assert track.get_run(run_id).info.status == "KILLED"


async def test_plots_screen_draws_the_run(tiny_store):
    app = PrunelabApp(tiny_store.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_view(app, pilot, tiny_store.run_id, "enter")
        await wait_for(pilot, lambda: app.screen.query_one("#summary", DataTable).row_count == 3,
                       what="the summary table")
        screen = app.screen
        assert screen.run_id == tiny_store.run_id and "FINISHED" in screen.title_text()
        ratio_plot = screen.query_one("#plot-ratio").plt.build()
        assert "loss" in ratio_plot and "grad_norm" in ratio_plot and "full data" in ratio_plot

        await pilot.press("2")
        trials = screen.query_one("#trials", DataTable)
        await wait_for(pilot, lambda: trials.row_count == 3, what="the trials")
        await settle(app, pilot)
        assert "accuracy vs epoch" in screen.query_one("#plot-trial").plt.build()
        await pilot.press("3")
        assert "score epoch" in screen.query_one("#plot-epoch").plt.build()
        await pilot.press("escape")
        assert isinstance(app.screen.query_one(RunTable), RunTable)


async def test_overlap_screen_matches_the_scores(tiny_store):
    from engine.store.tracking import tracker

    track = tracker(tiny_store.uri, os.getcwd())
    scores = {m: np.load(track.download(tiny_store.run_id, f"scores/{m}@e1.npy", tiny_store.workdir / m))
              for m in ("loss", "grad_norm")}
    app = PrunelabApp(tiny_store.uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_view(app, pilot, tiny_store.run_id, "o")
        heatmap = app.screen.query_one(Heatmap)
        await wait_for(pilot, lambda: heatmap.display and heatmap.labels, what="the heatmap")
        screen = app.screen
        assert screen.k == 60  # 10% of 600
        assert sorted(heatmap.labels) == ["grad_norm", "loss"]
        i, j = heatmap.labels.index("loss"), heatmap.labels.index("grad_norm")
        top = lambda s, k: set(np.argsort(-s, kind="stable")[:k].tolist())  # noqa: E731
        expected = len(top(scores["loss"], 60) & top(scores["grad_norm"], 60)) / 60
        assert heatmap.matrix[i][j] == pytest.approx(expected)
        assert heatmap.matrix[i][i] == 1.0
        assert f"{expected:.2f}" in str(heatmap.render())

        await pilot.press("plus")
        await wait_for(pilot, lambda: screen.result and screen.result["k"] == 90, what="k = 90")
        await pilot.press("s")
        await settle(app, pilot)
        assert screen.mode == "spearman" and heatmap.signed
        await pilot.press("l")
        await settle(app, pilot)
        bottom = lambda s, k: set(np.argsort(s, kind="stable")[:k].tolist())  # noqa: E731
        expected = len(bottom(scores["loss"], 90) & bottom(scores["grad_norm"], 90)) / 90
        assert heatmap.matrix[i][j] == pytest.approx(expected)
        # type an exact k
        box = screen.query_one("#k-input", Input)
        box.value = "7"
        box.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.result["k"] == 7, what="k = 7")


async def test_gallery_shows_top_and_bottom_samples(tiny_store):
    app = PrunelabApp(tiny_store.uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_view(app, pilot, tiny_store.run_id, "g")
        grid = app.screen.query_one(ImageGrid)
        await wait_for(pilot, lambda: len(grid.tiles) == 12, timeout=60, what="the tiles")
        screen = app.screen
        name = screen.query_one("#score").value
        scores = app.backend.scores(tiny_store.run_id, name)
        first = grid.tiles[0].caption
        top = int(np.argmax(scores))
        assert first[0].startswith(f"#{top} y=") and "ŷ=" in first[0]  # predictions are logged
        assert first[1] == f"s={scores[top]:.4g}"
        assert "▀" in str(grid.render())

        await pilot.press("t")
        await wait_for(pilot, lambda: grid.tiles[0].caption[0].startswith(f"#{int(np.argmin(scores))} "),
                       what="the bottom samples")
        await pilot.press("plus")
        await wait_for(pilot, lambda: len(grid.tiles) == 18, what="more tiles")
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: screen.query_one("#score").value != name, what="the next score")


async def test_compare_overlays_marked_runs(tiny_store):
    app = PrunelabApp(tiny_store.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await open_runs(app, pilot)
        await pilot.press("space", "down", "space")
        assert sorted(table.marked) == sorted([tiny_store.run_id, tiny_store.other_id])
        await pilot.press("c")
        cmp_table = app.screen.query_one("#cmp-table", DataTable)
        await wait_for(pilot, lambda: cmp_table.row_count == 6, what="both summaries")
        legend = str(app.screen.query_one("#cmp-legend-ratio").render()).replace("\u00a0", " ")
        assert "tui-a: loss" in legend and "tui-b: loss" in legend  # under the plot, not over its curves
        assert "tui-a: loss" not in app.screen.query_one("#cmp-plot-ratio").plt.build()


async def test_new_experiment_form_validates_inline(tiny_store):
    from engine.config import Config
    from tui.config_fields import field_specs

    app = PrunelabApp(tiny_store.uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        screen = app.screen
        await wait_for(pilot, lambda: screen.config is not None, what="the form to load and validate")
        specs = field_specs(Config)
        for spec in specs:  # every config field has its widget
            screen.query_one(f"#{spec.widget_id}")
        assert screen.query_one("#f-sweep--keep_ratios", Input).value == "0.3, 0.7"  # the quick preset
        assert not screen.query_one("#launch").disabled

        box = screen.query_one("#f-sweep--keep_ratios", Input)
        box.value = "0.3, 1.5"
        error = screen.query_one("#e-sweep--keep_ratios", Static)
        await wait_for(pilot, lambda: error.display, what="the inline error")
        assert "sweep.keep_ratios" in str(error.render()) and "1.5" in str(error.render())
        assert screen.query_one("#launch").disabled
        assert "invalid" in error.parent.parent.classes

        box.value = "0.3, 0.5"
        await wait_for(pilot, lambda: not error.display and screen.config is not None, what="the error to clear")
        assert screen.config.sweep.keep_ratios == [0.3, 0.5]

        # a check across fields lands on the field it names
        screen.query_one("#f-surrogate--epochs", Input).value = "0"
        score_epochs_error = screen.query_one("#e-sweep--score_epochs", Static)
        await wait_for(pilot, lambda: score_epochs_error.display, what="the cross-field error")
        screen.query_one("#f-model", Input).value = "nope"
        screen.query_one("#f-surrogate--epochs", Input).value = "1"
        model_error = screen.query_one("#e-model", Static)
        await wait_for(pilot, lambda: model_error.display, what="the unknown model error")
        assert "mlp" in str(model_error.render())  # the message lists the valid names


async def test_monitor_follows_a_progress_file(tmp_path, fresh_store):
    """A progress file written by anyone (here, by hand, for this live process) shows as a live panel."""
    from engine.store.events import EpochEnd, StageStarted, TrialFinished
    from tui.widgets.progress_panel import ProgressPanel

    uri = fresh_store(tmp_path / "mlruns" / "mlflow.db")
    progress = tmp_path / "mlruns" / "progress" / "feedbeef.jsonl"
    progress.parent.mkdir(parents=True)
    events = [RunStarted(run_id="feedbeef", experiment="by-hand", kind="prune", trials=4),
              StageStarted(stage="retrain", detail="loss / hardest / keep 0.5 / seed 0 / e1", trial=1, trials=4),
              TrialFinished(trial=0, trials=4, status="FINISHED"),
              EpochEnd(epoch=1, epochs=2, metrics={"train_loss": 0.5, "test_accuracy": 0.75}, trial=1)]
    progress.write_text("".join(e.to_json() + "\n" for e in events))
    app = PrunelabApp(uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m")
        await wait_for(pilot, lambda: app.screen.query(ProgressPanel), what="the panel")
        panel = app.screen.query_one(ProgressPanel)
        await wait_for(pilot, lambda: panel.progress is not None, what="the panel's data")
        assert panel.status == "RUNNING"
        assert "trial 2 of 4" in str(panel.query_one("#panel-stage").render())
        assert "acc 75.00%" in str(panel.query_one("#panel-metrics").render())
        with progress.open("a") as f:  # the file grows; the panel follows
            f.write(TrialFinished(trial=1, trials=4, status="FINISHED").to_json() + "\n")
        await wait_for(pilot, lambda: panel.progress.trials_done == 2, what="the next trial")
        await pilot.press("x")  # cancel asks first; "n" keeps the run
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmScreen"
                       and app.screen.query_one("#no").has_focus, what="the confirmation")
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "MonitorScreen", what="the answer")
        assert panel.status == "RUNNING"


async def test_help_lists_every_key(tiny_store):
    from tui.screens.help import help_sections

    app = PrunelabApp(tiny_store.uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        text = json.dumps(help_sections(PrunelabApp.BINDINGS))
        for key in ("?", "q", "/", "space", "enter", "x", "ctrl+l", "f", "l", "s", "t", "+", "[", "esc"):
            assert f'"{key}' in text, key
        await pilot.press("escape")
        assert app.screen.__class__.__name__ == "RunsScreen"
        await pilot.press("q")
    assert app.return_code == 0


async def test_overlap_screen_reads_an_overlap_runs_json():
    """An overlap run's own matrices are shown for its k; another k is recomputed from its scores."""
    from fixed_backend import RUNS, FixedBackend

    from tui.backend import overlap_matrices

    class OverlapRun(FixedBackend):
        def overlap(self, run_id):
            logged = overlap_matrices({m: self._scores[f"{m}@e1"] for m in ("loss", "grad_norm")}, 40)
            return {**logged, "first": [[1.0, 0.123], [0.123, 1.0]], "epoch": 1}  # a value only the file has

    app = PrunelabApp(backend=OverlapRun())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: runs_table(app).runs, what="the runs")
        app.open_run(RUNS[0].run_id, "overlap")
        await wait_for(pilot, lambda: app.screen.query_one(Heatmap).matrix, what="the heatmap")
        screen, heatmap = app.screen, app.screen.query_one(Heatmap)
        assert screen.k == 40 and heatmap.labels == ["loss", "grad_norm"] and heatmap.matrix[0][1] == 0.123
        assert "overlap.json" in str(screen.query_one("#overlap-note").render())
        await pilot.press("plus")
        await wait_for(pilot, lambda: screen.result.get("k") == 70, what="k = 70")
        assert heatmap.labels[:2] == ["loss", "grad_norm"]  # the file's order, with the run's other scores after
        assert "recomputed" in str(screen.query_one("#overlap-note").render())


async def test_progress_panel_holds_a_poll_that_arrives_before_it_has_mounted():
    """The monitor polls every second; on a busy machine a second poll can reach a panel whose
    children are not mounted yet. The panel must keep it and show it once mounted, not raise."""
    import time

    from textual.app import App

    from engine.store.progress import RunProgress
    from tui.widgets.progress_panel import ProgressPanel

    progress = RunProgress(run_id="abc123def456", experiment="early-poll", kind="prune", pid=os.getpid(),
                           host=socket.gethostname(), status="RUNNING", trials=4, trials_done=1,
                           stage="retrain", started=time.time() - 10, updated=time.time(), log=["one line"])
    app = App()
    async with app.run_test(size=(100, 30)) as pilot:
        panel = ProgressPanel(progress.run_id)
        panel.update_progress(progress, time.time())  # before mount: must not query children
        await app.screen.mount(panel)
        await settle(app, pilot)
        title = str(panel.query_one("#panel-title", Static).render())
        assert "early-poll" in title and "prune" in title
        assert str(panel.query_one("#count-trials").render()) == "1/4"
