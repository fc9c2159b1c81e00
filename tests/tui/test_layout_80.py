"""At 80x24 the runs table still shows each run's model and id, the empty-state hint is whole, every footer label
is whole, and trial names keep clear of the y ticks."""
from __future__ import annotations

import threading

import pytest
from fixed_backend import RUNS, FixedBackend
from tui_helpers import wait_for

from tui.app import PrunelabApp
from tui.fmt import pct, short_id
from tui.widgets.footer import FitFooter
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
            assert short_id(run.run_id) in text and run.model in text and run.kind in text
        assert ("dataset" in text) == (size[0] >= 120)  # what gives way at 80 columns
        # item 9: what pruning kept beside all the data ("pruned" where columns give way)
        assert " full " in text and ("best pruned" if size[0] >= 120 else " pruned ") in text
        assert pct(RUNS[0].full_accuracy) in text and pct(RUNS[0].best_pruned) in text
        if size[0] >= 120:  # room for every key of the runs screen and the app
            row, labels = footer_labels(app)
            assert len(labels) == 13 and all(label in row for label in labels), row


def footer_labels(app) -> tuple[str, list[str]]:
    """The footer's row as drawn, and the "key Label" of every key it holds."""
    footer = app.screen.query_one(FitFooter)
    row = app.screen._compositor.render_strips()[footer.region.y].text
    return row, [f"{k.key_display} {k.description}".strip() for k in footer.query("FooterKey")]


class Held(FixedBackend):
    """Every read but the run list waits until released: each screen draws its frame, footer included,
    without loading its data (the gallery's images take seconds on a busy machine)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        for name in ("run_row", "run_detail", "score_names", "overlap", "benchmark", "samples", "progress"):
            setattr(self, name, self._held(getattr(self, name)))

    def _held(self, read):
        def wait_then_read(*args, **kwargs):
            self.gate.wait(60)
            return read(*args, **kwargs)

        return wait_then_read


async def test_every_footer_label_is_whole_at_80_columns():
    """Item 4: no label cut ("c Comp"); keys that do not fit are left out whole, `?` help always stays."""
    from fixed_backend import BENCHMARK_RUN

    from tui.screens.compare import CompareScreen

    backend = Held()
    app = PrunelabApp(backend=backend)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(RunTable).runs, what="the runs")
        shows = {
            "runs": lambda: None,
            "new": lambda: app.switch_mode("new"),  # early: its form loads while the others are shown
            "plots": lambda: app.open_run(RUNS[0].run_id, "plots"),
            "overlap": lambda: app.open_run(RUNS[0].run_id, "overlap"),
            "gallery": lambda: app.open_run(RUNS[0].run_id, "gallery"),
            "leaderboard": lambda: app.open_run(BENCHMARK_RUN.run_id, "leaderboard"),
            "compare": lambda: (app.action_runs(), app.push_screen(CompareScreen([r.run_id for r in RUNS[:2]]))),
            "monitor": lambda: app.switch_mode("monitor"),
        }
        screens = {}
        for name, show in shows.items():
            show()
            await wait_for(pilot, lambda: app.screen.query(FitFooter) and "? Help" in footer_labels(app)[0],
                           what=f"the {name} screen's footer")
            await pilot.pause()
            screens[name] = app.screen
            row, labels = footer_labels(app)
            assert "? Help" in labels and row.rstrip().endswith("^p palette"), (name, row)
            for label in labels:
                assert label in row, (name, label, row)
            if name == "runs":  # what gives way is the least specific: the runs screen's own keys all stay
                assert {"/ Filter", "p Plots", "o Overlap", "g Gallery", "c Compare"} <= set(labels), row
        backend.gate.set()
        await wait_for(pilot, lambda: screens["new"].config is not None, what="the form, before the app closes")


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


# ---------------------------------------------------------------- issue 26
class Wide(FixedBackend):
    """The fixed runs, a benchmark row with a timm model and a long name, and a run with a benchmark's trials."""

    def list_runs(self):
        import dataclasses

        timm = dataclasses.replace(RUNS[0], run_id="f60718293a4b5c6d7e8f90a1b2c3d4e5", experiment="pets-folder-timm",
                                   kind="benchmark", model="timm:resnet10t", dataset="folder:/data/pets")
        return [timm, *RUNS]

    def run_detail(self, run_id):
        from tui.backend import RunDetail, TrialRow

        detail = super().run_detail(run_id)
        trials = [TrialRow(f"c{i}-{seed}", method, strategy, 0.3 + 0.4 * i, seed, 2, "FINISHED", 0.8)
                  for i, (method, strategy) in enumerate([("dynamic_uncertainty", "hardest"),
                                                          ("el2n", "contextual_diversity")]) for seed in (0, 1)]
        return RunDetail(detail.run, detail.summary, trials)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_a_long_model_never_pushes_the_run_id_or_the_kind_off(size):
    """`timm:resnet10t` left "88" of the run id at 80 columns, and there was no kind column."""
    app = PrunelabApp(backend=Wide())
    async with app.run_test(size=size) as pilot:
        table = app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: len(table.runs) == 5 and table.virtual_size.width
                       and not table._require_update_dimensions, what="the columns measured")
        assert table.virtual_size.width <= table.scrollable_content_region.width
        text = screen_text(app)
        for run in app.backend.list_runs():
            assert short_id(run.run_id) in text and f" {run.kind} " in text
        assert ("timm:resnet10t" in text) == (size[0] >= 120)  # cut with "…" at 80 columns, whole at 120
        assert "timm:" in text


async def test_trial_names_keep_their_seed_at_120_columns():
    app = PrunelabApp(backend=Wide())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(RunTable).runs, what="the runs")
        app.open_run(RUNS[0].run_id, "plots")
        await wait_for(pilot, lambda: app.screen.query("#trials") and app.screen.query_one("#trials").row_count == 4,
                       what="the trials")
        await pilot.press("2")
        await wait_for(pilot, lambda: "┤" in screen_text(app), what="the trial curve")
        text = screen_text(app)
        for name in ("dynamic_uncertainty keep 0.3 s0", "dynamic_uncertainty keep 0.3 s1",
                     "el2n/contextual_diversity keep 0.7 s0", "el2n/contextual_diversity keep 0.7 s1"):
            assert name in text, name


async def test_compares_legend_sits_under_the_curves_at_80_columns():
    from tui.screens.compare import CompareScreen

    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(RunTable).runs, what="the runs")
        app.push_screen(CompareScreen([RUNS[0].run_id, RUNS[1].run_id]))
        await wait_for(pilot, lambda: app.screen.query("#cmp-legend-ratio")
                       and app.screen.query_one("#cmp-legend-ratio").display, what="the legend")
        plot, legend = app.screen.query_one("#cmp-plot-ratio"), app.screen.query_one("#cmp-legend-ratio")
        assert legend.region.y >= plot.region.bottom  # under the plot
        entries = str(legend.render()).replace("\u00a0", " ")
        for label in ("quick: grad_norm", "quick: loss", "quick-b: loss",
                      "quick: full data 60.7%", "quick-b: full data 57.4%"):
            assert label in entries, label
        assert "quick: loss" not in plot.plt.build()  # none over the curves
