"""The monitor on fixed data: which run is selected, where runs sit, and what x / enter / j / k / a click act on."""
from __future__ import annotations

import dataclasses
import re

import pytest
from fixed_backend import NOW, RUNS, FixedBackend
from tui_helpers import wait_for

from engine.store.events import BatchProgress, EpochEnd, RunStarted, StageStarted
from engine.store.progress import RunProgress
from tui.app import PrunelabApp
from tui.widgets.progress_panel import ProgressPanel

pytestmark = pytest.mark.anyio


class Growing(FixedBackend):
    """The fixed runs, the ended one listed first (as a progress folder lists it), and later a new launch."""

    def __init__(self) -> None:
        super().__init__()
        live, ended = super().progress()
        self.runs = [ended, live]
        self.launched = dataclasses.replace(live, run_id=RUNS[1].run_id, experiment="new-launch",
                                            started=NOW - 5, trials_done=0, log=[])
        self.cancelled: list[str] = []

    def progress(self) -> list[RunProgress]:
        return list(self.runs)


def order(app) -> list[str]:
    return [p.run_id for p in app.screen.query_one("#panels").query_children(ProgressPanel)]


def selected(app) -> list[str]:
    return [p.run_id for p in app.screen.query(ProgressPanel) if p.has_class("selected")]


async def test_monitor_lists_running_first_selects_the_newest_and_acts_on_the_selection():
    backend = Growing()
    live, ended, new = RUNS[2].run_id, RUNS[0].run_id, RUNS[1].run_id
    app = PrunelabApp(backend=backend)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("m")
        await wait_for(pilot, lambda: order(app) == [live, ended], what="running above ended")
        assert selected(app) == [live] and app.screen.selected == live
        folded = app.screen.query_one(f"#panel-{ended}", ProgressPanel)
        assert folded.has_class("folded")
        await pilot.pause()
        assert folded.region.height < app.screen.query_one(f"#panel-{live}").region.height / 2  # title lines only

        backend.runs.append(backend.launched)  # a launch from elsewhere: it goes on top and is selected
        await wait_for(pilot, lambda: order(app) == [new, live, ended], what="the new run on top")
        assert selected(app) == [new]

        await pilot.press("j")
        assert selected(app) == [live]
        await pilot.press("j")
        assert selected(app) == [ended] and not folded.has_class("folded")  # selected: unfolded
        await pilot.press("x")  # the selected run has ended: x says so and asks nothing
        assert app.screen.__class__.__name__ == "MonitorScreen"
        await pilot.press("k", "k")
        assert selected(app) == [new]

        await pilot.click(f"#panel-{live}")  # the mouse selects too
        assert selected(app) == [live]
        await pilot.press("x")  # ... and x asks about that run, not the first panel
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmScreen", what="the question")
        assert f"seed-sweep {live[:8]}" in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "MonitorScreen", what="the answer")

        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "PlotsScreen", what="the plots")
        assert app.screen.run_id == live


def test_epoch_bar_counts_finished_epochs():
    """Epoch 2 of 2 under way is 1/2 done; its end (or its last batch) makes it 2/2; a new stage starts at 0."""
    progress = RunProgress()
    progress.apply(RunStarted(run_id="r", experiment="e", kind="prune", trials=2))
    progress.apply(StageStarted(stage="retrain", trial=0, trials=2))
    progress.apply(EpochEnd(epoch=1, epochs=2, metrics={}))
    assert progress.epochs_done == 1
    progress.apply(BatchProgress(epoch=2, epochs=2, batch=1, batches=10))
    assert progress.epochs_done == 1
    progress.apply(BatchProgress(epoch=2, epochs=2, batch=10, batches=10))
    assert progress.epochs_done == 2
    progress.apply(EpochEnd(epoch=2, epochs=2, metrics={}))
    assert progress.epochs_done == 2
    progress.apply(StageStarted(stage="retrain", trial=1, trials=2))
    assert progress.epochs_done == 0


# ---------------------------------------------------------------- issue 26: log, metrics, x, ETA
def screen_text(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


class LongLog(FixedBackend):
    """The fixed runs, the live one with a benchmark's long trial lines and `extra` more."""

    def __init__(self, extra: int = 0) -> None:
        super().__init__()
        self.extra = extra

    def progress(self) -> list[RunProgress]:
        from fixed_backend import trial_lines

        live, ended = super().progress()
        lines = trial_lines(375, [("el2n", "kcenter_greedy", 0.3, 2, 2, 0.9231)] * (1 + self.extra))
        return [dataclasses.replace(live, log=live.log + lines), ended]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_log_wraps_at_the_width_it_is_drawn_at(size):
    """`acc 92.` at 80 columns: a RichLog kept lines wrapped (or cut) at the width they were written at."""
    from rich.cells import cell_len

    app = PrunelabApp(backend=LongLog())
    async with app.run_test(size=size) as pilot:
        await pilot.press("m")
        panel_id = f"#panel-{RUNS[2].run_id}"
        await wait_for(pilot, lambda: app.screen.query(panel_id)
                       and "92.31" in screen_text(app), what="the newest line")
        log = app.screen.query_one(panel_id).query_one("#panel-log")
        width = log.content_size.width
        rows = [row.plain for row in log.wrapped(width)]
        assert all(cell_len(row) <= width for row in rows)  # nothing runs past the edge, to be cut
        assert "acc 92.31%" in re.sub(r"\s+", " ", " ".join(rows))
        drawn = screen_text(app).splitlines()[log.region.y:log.region.bottom]
        assert rows[-1].strip() in drawn[-1] and rows[-2].strip() in drawn[-2]  # the newest rows, as wrapped


async def test_the_selected_runs_log_takes_the_free_rows():
    """At 120x40 a long log fills the screen rather than staying 5 rows above empty ones."""
    app = PrunelabApp(backend=LongLog(extra=40))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("m")
        panel_id = f"#panel-{RUNS[2].run_id}"
        await wait_for(pilot, lambda: app.screen.query(panel_id)
                       and app.screen.query_one(panel_id).query_one("#panel-log").size.height > 5, what="a taller log")
        container = app.screen.query_one("#panels")
        used = sum(p.outer_size.height + 1 for p in container.query_children(ProgressPanel))
        assert container.size.height - 2 <= used <= container.size.height + 1  # no block of empty rows below
        assert "acc 92.31%" in screen_text(app).splitlines()[app.screen.query_one(panel_id).query_one(
            "#panel-log").region.bottom - 1]  # the newest line at the bottom


def test_a_stages_metrics_are_its_own():
    """The surrogate's train loss is not trial 1's: a new stage starts with no metrics."""
    from tui.widgets.progress_panel import metrics_line

    p = RunProgress()
    p.apply(RunStarted(run_id="r", experiment="e", kind="prune", trials=3, t=0.0))
    p.apply(StageStarted(stage="surrogate", t=1.0))
    p.apply(EpochEnd(epoch=1, epochs=1, metrics={"train_loss": 0.5}, t=5.0))
    assert "train loss 0.5000" in metrics_line(p, True, 6.0)
    p.apply(StageStarted(stage="retrain", trial=0, trials=3, t=7.0))
    assert "train loss" not in metrics_line(p, True, 8.0)
    p.apply(EpochEnd(epoch=1, epochs=2, metrics={"train_loss": 0.3, "test_accuracy": 0.9}, trial=0, t=9.0))
    assert "train loss 0.3000" in metrics_line(p, True, 9.5) and "test acc 90.00%" in metrics_line(p, True, 9.5)


def test_eta_before_the_first_trial_ends():
    """During the surrogate and scoring there is no trial pace: the stage's own pace, or the run's estimate."""
    from tui.widgets.progress_panel import eta_text

    p = RunProgress(trials=10, started=100.0, stage="surrogate", stage_started=120.0, epoch=2, epochs=2, batch=5,
                    batches=10)  # epoch 1 done, half of epoch 2: 3/4 of the stage in 10 s
    assert eta_text(p, 130.0) == "ETA estimating… (surrogate ends in ~3s)"
    assert eta_text(p, 130.0, estimate=100.0) == "ETA ~1m10s (estimate)"  # 100 s in all, 30 s spent
    assert eta_text(p, 130.0, estimate=20.0) == "ETA ~3s (estimate)"  # never below the stage's own
    scoring = dataclasses.replace(p, stage="scoring", epoch=1, epochs=1, batch=1, batches=4)  # a pass: batches
    assert eta_text(scoring, 130.0) == "ETA estimating… (scoring ends in ~30s)"
    trials = dataclasses.replace(p, stage="retrain", trials_done=3, trials_started=120.0, trials_done_before=1)
    assert eta_text(trials, 130.0) == "ETA 35s"  # 2 trials in the 10 s since the trials began, 7 to go
    assert eta_text(RunProgress(trials=10, started=100.0), 130.0) == "ETA estimating…"


async def test_cancel_is_offered_for_a_running_run_only():
    backend = Growing()
    live, ended = RUNS[2].run_id, RUNS[0].run_id
    app = PrunelabApp(backend=backend)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("m")
        await wait_for(pilot, lambda: order(app) == [live, ended], what="the runs")

        def footer() -> str:
            return screen_text(app).splitlines()[-1]

        status = app.screen.query_one("#monitor-status")
        await wait_for(pilot, lambda: "Cancel run" in footer(), what="x for the running run")
        assert "x cancel" in str(status.render())
        await pilot.press("j")
        await wait_for(pilot, lambda: "Cancel run" not in footer(), what="no x for the ended run")
        assert selected(app) == [ended] and "x cancel" not in str(status.render())
        assert app.screen.check_action("cancel", ()) is False
