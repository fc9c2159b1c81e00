"""At 80x24 the runs table still shows each run's model and id, the empty-state hint is whole, and trial names keep clear of the y ticks."""
from __future__ import annotations

import pytest
from fixed_backend import RUNS, FixedBackend
from tui_helpers import wait_for

from tui.app import PrunelabApp
from tui.fmt import pct, short_id
from tui.widgets.run_table import RunTable

pytestmark = pytest.mark.anyio


def screen_text(app) -> str:
    """What the terminal shows, line by line."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_runs_table_fits_with_model_and_run_id(size):
    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(RunTable).runs, what="the runs")
        table = app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.virtual_size.width and not table._require_update_dimensions,
                       what="the columns measured")
        assert table.virtual_size.width <= table.scrollable_content_region.width  # no column off-screen
        text = screen_text(app)
        for run in RUNS:
            assert short_id(run.run_id) in text and run.model in text
        assert ("dataset" in text) == (size[0] >= 120)  # what gives way at 80 columns
        assert " full " in text and "best pruned" in text  # item 9: what pruning kept beside all the data
        assert pct(RUNS[0].full_accuracy) in text and pct(RUNS[0].best_pruned) in text


class Empty(FixedBackend):
    uri = "sqlite:////home/someone/projects/pruning-study/mlruns/mlflow.db"

    def list_runs(self):
        return []


async def test_the_empty_state_hint_is_whole_at_80_columns():
    app = PrunelabApp(backend=Empty())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "No runs yet" in screen_text(app), what="the hint")
        text = screen_text(app)
        assert "Press n to start an experiment" in text
        assert "pruning-study" in text  # the store's URI wraps onto the next line, whole


async def test_a_boolean_field_says_on_or_off_in_words():
    from textual.widgets import Label, Switch

    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(RunTable).runs, what="the runs")
        await pilot.press("n")
        await wait_for(pilot, lambda: getattr(app.screen, "config", None) is not None, what="the form")
        switch, state = app.screen.query_one("#f-train--augment", Switch), app.screen.query_one("#s-train--augment", Label)
        await wait_for(pilot, lambda: str(state.render()) == "on", what="the preset's true")  # quick: augment = true
        switch.value = False
        await wait_for(pilot, lambda: str(state.render()) == "off" and not state.has_class("on"), what="off")
        assert app.screen.form_data()["train"]["augment"] is False


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_trial_names_stay_clear_of_the_curves_y_ticks(size):
    """Item 4: a long trial name beside the trial curve never runs into a tick ("seed 1" + "93.7": "seed 193.7")."""
    import re

    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(RunTable).runs, what="the runs")
        app.open_run(RUNS[0].run_id, "plots")
        await wait_for(pilot, lambda: app.screen.query("#trials") and app.screen.query_one("#trials").row_count,
                       what="the trials")
        await pilot.press("2")
        await wait_for(pilot, lambda: "┤" in screen_text(app), what="the trial curve")
        ticks = [line for line in screen_text(app).splitlines() if "┤" in line]
        for line in ticks:
            before = re.match(r"(.*?)(\d+(\.\d+)?)┤", line)
            assert before and not before.group(1)[-1:].strip(), line  # a gap before every tick
