"""The monitor on fixed data: which run is selected, where runs sit, and what x / enter / j / k / a click act on."""
from __future__ import annotations

import dataclasses

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
