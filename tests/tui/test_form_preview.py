"""The New-experiment form: only the chosen kind's sections, a preview in its ready line, a question before a large
launch, an error line that never moves the form, and help that cites only commands that exist. On fixed data (the
fixed backend's preview has the real trial counts and a fixed time)."""
from __future__ import annotations

import re

import pytest
from fixed_backend import FixedBackend
from textual.widgets import Input, Static
from tui_helpers import wait_for

from engine.api import CONFIRM_TRIALS, kind_sections, trial_count
from engine.config import Config, describe, load_config
from tui.app import PrunelabApp
from tui.config_fields import field_specs

pytestmark = pytest.mark.anyio


class Launches(FixedBackend):
    """The fixed backend, recording launches instead of starting them."""

    def __init__(self) -> None:
        super().__init__()
        self.launched: list = []

    def launch(self, config) -> dict:
        self.launched.append(config)
        return {"run_id": "f" * 32, "pid": 1}


async def open_form(app, pilot):
    await wait_for(pilot, lambda: app.recent_runs, what="the runs")
    await pilot.press("n")
    screen = app.screen
    await wait_for(pilot, lambda: screen.config is not None and screen.preview is not None, timeout=60,
                   what="the form, validated and previewed")
    return screen


def shown_sections(screen) -> dict[str, bool]:
    return {g.section: g.display for g in screen.query(".form-section") if g.section}


def banner(screen) -> str:
    return str(screen.query_one("#form-error", Static).render())


async def test_the_form_shows_the_kinds_sections_and_keeps_what_was_typed():
    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_form(app, pilot)
        registered = set(kind_sections("study")) | set(kind_sections("benchmark")) | set(kind_sections("online"))
        sections = shown_sections(screen)
        assert {s for s, shown in sections.items() if shown and s in registered} == set(kind_sections("prune"))
        assert all(sections[s] for s in ("data", "train", "surrogate"))  # the core, for every kind
        trials = trial_count(load_config("quick"))
        assert banner(screen) == f"ready: prune on mnist-mini with cnn · {trials} trials, 1 surrogate, ~1 min"

        screen.query_one("#f-sweep--keep_ratios", Input).value = "0.4, 0.6"  # typed, then the kind changes
        screen.query_one("#f-kind", Input).value = "benchmark"
        await wait_for(pilot, lambda: re.match(r"ready: benchmark .* · \d+ trials", banner(screen)),
                       timeout=60, what="the benchmark's preview")
        sections = shown_sections(screen)
        assert {s for s, shown in sections.items() if shown and s in registered} == set(kind_sections("benchmark"))
        bench = load_config("quick", {"kind": "benchmark"})
        assert banner(screen).startswith(f"ready: benchmark on mnist-mini with cnn · {trial_count(bench)} trials")
        assert "sweep" not in screen.form_data()  # a hidden section is left out: its defaults apply

        screen.query_one("#f-kind", Input).value = "prune"  # back: the typed ratios are still there
        await wait_for(pilot, lambda: screen.config is not None and screen.config.kind == "prune", what="prune")
        assert screen.query_one("#f-sweep--keep_ratios", Input).value == "0.4, 0.6"
        assert screen.config.sweep.keep_ratios == [0.4, 0.6]
        screen.query_one("#f-kind", Input).value = "benc"  # on the way to a name: nothing blanks
        await pilot.pause(0.3)
        assert shown_sections(screen)["sweep"]


async def test_a_large_launch_asks_first():
    backend = Launches()
    app = PrunelabApp(backend=backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_form(app, pilot)
        screen.query_one("#f-kind", Input).value = "benchmark"
        await wait_for(pilot, lambda: screen.config is not None and screen.config.kind == "benchmark",
                       what="benchmark")
        count = trial_count(screen.config)
        assert count > CONFIRM_TRIALS
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", timeout=30, what="the question")
        question = str(app.screen.query_one("#confirm-question").render())
        assert f"{count} trials" in question and "benchmark on mnist-mini with cnn" in question
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen and not screen.query_one("#launch").disabled,
                       what="the form again")
        assert backend.launched == []
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", timeout=30, what="the question")
        await pilot.press("y")
        await wait_for(pilot, lambda: backend.launched, timeout=30, what="the launch")
        assert backend.launched[0].kind == "benchmark" and app.current_mode == "monitor"

        app.switch_mode("new")  # a small run launches at once
        screen.query_one("#f-kind", Input).value = "prune"
        await wait_for(pilot, lambda: screen.config is not None and screen.config.kind == "prune", what="prune")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: len(backend.launched) == 2, timeout=30, what="the second launch")
        assert backend.launched[1].kind == "prune"


async def test_an_error_never_moves_the_form_and_tab_goes_to_the_next_field():
    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_form(app, pilot)
        form = screen.query_one("#form")
        top, line = form.region.y, screen.query_one("#form-error", Static)
        box = screen.query_one("#f-sweep--keep_ratios", Input)
        box.focus()
        box.value = "0.3, 1.5"
        await wait_for(pilot, lambda: screen.error is not None and "sweep.keep_ratios" in screen.error,
                       what="the error")
        await pilot.pause(0.2)
        assert len(f"⚠ {screen.error}") > 80  # longer than a line
        assert line.region.height == 1 and form.region.y == top  # the long message is cut, not wrapped
        assert screen.query_one("#e-sweep--keep_ratios", Static).display  # ... and whole under its field
        await pilot.press("tab")
        assert app.focused.id == "f-sweep--seeds"  # the next field of the same section


def test_the_forms_help_cites_only_commands_that_exist():
    from click import Context

    from tui.cli import main
    from tui.screens.new import NewExperimentScreen

    texts = [describe(spec.path) for spec in field_specs(Config)] + [NewExperimentScreen.HELP]
    cited = {m for text in texts for m in re.findall(r"`prunelab ([a-z][a-z -]*?)[`\s]", text)}
    assert cited  # scorers, config show, ...
    for command in cited:
        group, ctx = main, Context(main)
        for word in command.split():
            sub = group.get_command(ctx, word) if hasattr(group, "get_command") else None
            if sub is None:
                break
            group = sub
        assert group is not main, f"the form's help cites `prunelab {command}`, which does not exist"
