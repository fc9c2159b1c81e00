"""The TUI's Textual conventions: bindings with ids and tooltips, the command palette, typed workers
with one error handler, the backend Protocol, and the monitor's trial log lines. On fixed data."""
from __future__ import annotations

import inspect
import re
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from fixed_backend import BENCHMARK_RUN, RUNS, FixedBackend
from textual.binding import Binding
from textual.command import CommandList
from tui_helpers import wait_for

from engine.api import ProgressWatcher
from engine.store.events import RunStarted, TrialFinished
from engine.store.progress import trial_line
from tui.app import PrunelabApp
from tui.backend import Backend, BackendProtocol

pytestmark = pytest.mark.anyio

TUI = Path(__file__).parents[2] / "tui"


def binding_owners() -> list[type]:
    from tui.screens.compare import CompareScreen
    from tui.screens.embedding_map import EmbeddingMapScreen
    from tui.screens.gallery import GalleryScreen
    from tui.screens.help import ConfirmScreen, HelpScreen
    from tui.screens.inspector import InspectorScreen
    from tui.screens.leaderboard import LeaderboardScreen
    from tui.screens.monitor import MonitorScreen
    from tui.screens.new import NewExperimentScreen
    from tui.screens.overlap import OverlapScreen
    from tui.screens.plots import PlotsScreen
    from tui.screens.runs import RunsScreen
    from tui.widgets.run_table import RunTable

    return [PrunelabApp, RunsScreen, RunTable, MonitorScreen, NewExperimentScreen, PlotsScreen, OverlapScreen,
            GalleryScreen, InspectorScreen, EmbeddingMapScreen, LeaderboardScreen, CompareScreen, HelpScreen,
            ConfirmScreen]


def test_every_binding_has_an_id_and_a_tooltip():
    for owner in binding_owners():
        ids = []
        for binding in owner.BINDINGS:
            assert isinstance(binding, Binding), (owner.__name__, binding)
            assert binding.id and binding.tooltip, (owner.__name__, binding.key)
            ids.append(binding.id)
        assert len(ids) == len(set(ids)), owner.__name__
    # every Binding( in the sources names an id (a screen not listed above would show here)
    for path in TUI.rglob("*.py"):
        for call in re.findall(r'Binding\("(.*?)\),?\n', path.read_text(), re.DOTALL):
            assert "id=" in call, (path.name, call)


# ---------------------------------------------------------------- the backend Protocol
def protocol_members() -> list[str]:
    return [name for name in vars(BackendProtocol) if not name.startswith("_")]


def test_both_backends_implement_the_protocol():
    members = protocol_members()
    assert {"list_runs", "run_detail", "progress", "cancel", "launch", "uri"} <= set(members)
    assert isinstance(FixedBackend(), BackendProtocol)
    for cls in (Backend, FixedBackend):
        for name in members:
            assert hasattr(cls, name), (cls.__name__, name)
            wanted = getattr(BackendProtocol, name)
            if callable(wanted):
                expected = list(inspect.signature(wanted).parameters)
                assert list(inspect.signature(getattr(cls, name)).parameters) == expected, (cls.__name__, name)


def test_the_protocol_lists_every_backend_call_the_tui_makes():
    called = set()
    for path in TUI.rglob("*.py"):
        called |= set(re.findall(r"(?<!tui)\.backend\.([a-z_]\w*)", path.read_text()))
    assert called <= set(protocol_members()), called - set(protocol_members())


# ---------------------------------------------------------------- the monitor's log lines
def test_trial_lines_name_the_trial_and_its_accuracy():
    params = {"method": "el2n", "strategy": "hardest", "ratio": "0.5", "seed": 0, "epoch": 2}
    done = TrialFinished(trial=2, trials=14, status="FINISHED", params=params, metrics={"test_accuracy": 0.97312})
    assert trial_line(done) == "trial 3/14 FINISHED  el2n / hardest / keep 0.5 / seed 0 / e2  acc 97.31%"
    full = TrialFinished(trial=0, trials=14, status="FINISHED", params={"method": "full", "seed": 1},
                         metrics={"test_accuracy": 0.99})
    assert trial_line(full) == "trial 1/14 FINISHED  full-data / seed 1  acc 99.00%"
    failed = TrialFinished(trial=3, trials=14, status="FAILED", params=params, message="TrainingDiverged: nan")
    assert trial_line(failed) == "trial 4/14 FAILED  el2n / hardest / keep 0.5 / seed 0 / e2  TrainingDiverged: nan"
    # the event's own name wins (the engine's TrialFinished is gaining one)
    named = SimpleNamespace(trial=0, trials=2, status="FINISHED", name="online: el2n, top 32 of 128 / seed 0",
                            params=params, metrics={"test_accuracy": 0.5}, message="")
    assert trial_line(named) == "trial 1/2 FINISHED  online: el2n, top 32 of 128 / seed 0  acc 50.00%"


def test_the_watcher_writes_trial_lines(tmp_path):
    import os

    folder = tmp_path / "progress"
    folder.mkdir()
    params = {"method": "loss", "strategy": "easiest", "ratio": "0.3", "seed": 1, "epoch": 1}
    events = [RunStarted(run_id="r", experiment="e", kind="prune", trials=2, pid=os.getpid(),
                         host=socket.gethostname()),
              TrialFinished(trial=0, trials=2, status="FINISHED", params=params, metrics={"test_accuracy": 0.8})]
    (folder / "r.jsonl").write_text("".join(e.to_json() + "\n" for e in events))
    (progress,) = ProgressWatcher(folder).poll()
    assert progress.log == ["trial 1/2 FINISHED  loss / easiest / keep 0.3 / seed 1 / e1  acc 80.00%"]


# ---------------------------------------------------------------- the command palette
def first_hit(app) -> str:
    return str(app.screen.query_one(CommandList).get_option_at_index(0).prompt)


async def palette(app, pilot, query: str, expect: str) -> None:
    """ctrl+p, type the query, wait for `expect` to be the best hit, press enter."""
    await pilot.press("ctrl+p")
    await pilot.press(*query)
    await wait_for(pilot, lambda: expect in first_hit(app), timeout=10, what=f"{expect!r} first for {query!r}")
    await pilot.press("enter")


async def test_palette_finds_screens_and_opens_runs():
    from tui.screens.compare import CompareScreen
    from tui.screens.plots import PlotsScreen

    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, what="the runs")
        await palette(app, pilot, "new", "New experiment")
        await wait_for(pilot, lambda: app.current_mode == "new", what="the New-experiment screen")
        await palette(app, pilot, "monitor", "Monitor")
        await wait_for(pilot, lambda: app.current_mode == "monitor", what="the monitor")
        await palette(app, pilot, "runs", "Runs")
        await wait_for(pilot, lambda: app.current_mode == "runs", what="the runs screen")

        await palette(app, pilot, "seed-sweep", "seed-sweep")
        await wait_for(pilot, lambda: isinstance(app.screen, PlotsScreen), what="the run's plots")
        assert app.screen.run_id == RUNS[2].run_id

        await pilot.press("escape")
        await pilot.press("space", "down", "space")  # mark two runs
        await palette(app, pilot, "compare", "Compare")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare")
        assert len(app.screen.run_ids) == 2


async def test_palette_offers_the_current_screens_actions():
    from tui.commands import PrunelabCommands

    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, what="the runs")
        provider = PrunelabCommands(app.screen)
        await provider.startup()
        hits = [hit async for hit in provider.search("filter")]
        assert hits and hits[0].text == "Filter" and "Show only the runs matching" in hits[0].help
        assert {h.text for h in [hit async for hit in provider.discover()]} >= {"Runs", "Monitor", "Quit"}


# ---------------------------------------------------------------- one handler for worker errors
class Broken(FixedBackend):
    def list_runs(self):
        raise RuntimeError("the store is down")

    def run_detail(self, run_id):
        raise RuntimeError(f"no run {run_id[:8]}")


def errors(app) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "error"]


async def test_a_failing_worker_shows_one_error_notice():
    from textual.widgets import Static

    app = PrunelabApp(backend=Broken())
    async with app.run_test(size=(100, 30)) as pilot:
        status = app.screen.query_one("#runs-status", Static)
        await wait_for(pilot, lambda: "the store is down" in str(status.render()), what="the status line")
        for _ in range(3):  # the same failure again: no pile of notices
            await pilot.press("f5")
            await pilot.pause(0.2)
        assert errors(app) == ["cannot read the runs: the store is down"]

        app.open_run(RUNS[0].run_id, "plots")
        await wait_for(pilot, lambda: len(errors(app)) == 2, what="the plots error")
        assert errors(app)[1] == f"cannot read the run: no run {RUNS[0].run_id[:8]}"
        assert app.screen.is_current  # the app is still up


# ---------------------------------------------------------------- every key the help lists, pressed
async def open_screen(app, pilot, title: str):
    """Go to the screen the help's section `title` is about, as a user would (or as the palette does)."""
    from tui.screens.compare import CompareScreen

    app.action_runs()
    await pilot.pause()
    if title in ("Monitor", "New experiment"):
        await pilot.press({"Monitor": "m", "New experiment": "n"}[title])
    elif title in ("Plots", "Overlap", "Gallery"):
        app.open_run(RUNS[0].run_id, title.lower())
    elif title == "Leaderboard":
        app.open_run(BENCHMARK_RUN.run_id, "leaderboard")
    elif title == "Compare":
        app.push_screen(CompareScreen([RUNS[0].run_id, RUNS[1].run_id]))
    elif title == "Inspector":
        app.inspect_sample(RUNS[0].run_id, 5)
    elif title == "Embedding map":
        app.open_run(RUNS[0].run_id, "map")
    names = {"Runs": "RunsScreen", "Monitor": "MonitorScreen", "New experiment": "NewExperimentScreen",
             "Plots": "PlotsScreen", "Overlap": "OverlapScreen", "Gallery": "GalleryScreen", "Compare": "CompareScreen",
             "Leaderboard": "LeaderboardScreen", "Inspector": "InspectorScreen", "Embedding map": "EmbeddingMapScreen"}
    await wait_for(pilot, lambda: type(app.screen).__name__ == names[title], what=f"the {title} screen")
    await pilot.pause()


# what each key does, as the screens table of docs/guide/tui.md says (written here, not read from the bindings)
RUN_VIEWS = ["p app.open_run_view('plots')", "o app.open_run_view('overlap')", "g app.open_run_view('gallery')"]
KEYS = {
    "Everywhere": ["question_mark help", "q quit", "r runs", "m switch_mode('monitor')", "n switch_mode('new')",
                   "escape back"],
    "Runs": ["slash filter", "enter open('plots')", "p open('plots')", "o open('overlap')", "g open('gallery')",
             "l leaderboard", "c compare", "x cancel", "f5 reload", "escape clear_filter", "space toggle_mark", "s next_sort",
             "S reverse_sort"],
    "Monitor": ["x cancel", "enter open", "down,j select_panel(1)", "up,k select_panel(-1)"],
    "New experiment": ["ctrl+l launch", "ctrl+r reset"],
    "Plots": RUN_VIEWS + ["1 tab('tab-ratio')", "2 tab('tab-trial')", "3 tab('tab-epoch')", "4 tab('tab-summary')",
                           "5 tab('tab-seen')"],
    "Leaderboard": RUN_VIEWS + ["s cycle_sort", "i inspect", "e app.open_run_view('map')"],
    "Overlap": RUN_VIEWS + ["f mode('first')", "l mode('last')", "s mode('spearman')", "plus,equals_sign k(1)",
                            "minus k(-1)", "e next_epoch"],
    "Gallery": RUN_VIEWS + ["t toggle_top", "plus,equals_sign n(1)", "minus n(-1)", "left_square_bracket score(-1)",
                            "right_square_bracket score(1)", "i inspect", "e app.open_run_view('map')"],
    "Inspector": RUN_VIEWS + ["left_square_bracket step(-1)", "right_square_bracket step(1)", "slash goto",
                              "e map"],
    "Embedding map": RUN_VIEWS + ["enter,i inspect", "left_square_bracket trial(-1)", "right_square_bracket trial(1)",
                                  "left move('left')", "right move('right')", "up move('up')", "down move('down')"],
    "Compare": ["1 tab('cmp-ratio')", "2 tab('cmp-epoch')", "3 tab('cmp-summary')"],
}


async def test_every_key_the_help_lists_runs_its_action_on_its_screen(monkeypatch):
    """For each screen: open the help there, check it lists every key of KEYS for that screen (and no
    other), then press each key and check that exactly KEYS' action ran; the global keys on Plots.

    The action is replaced by a recorder while its key is pressed, so a key bound to another action,
    shadowed by a widget's binding (a scroll container's `down`), or missing, fails. What each action
    then does is the screens' own tests (test_screens.py) and the sort test below.
    """
    from textual.actions import parse

    from tui.screens.help import KEY_NAMES, HelpScreen, help_sections
    from tui.widgets.run_table import RunTable

    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, what="the runs")
        pressed = 0
        for title in ("Runs", "Monitor", "New experiment", "Plots", "Overlap", "Gallery", "Inspector", "Embedding map",
                      "Leaderboard", "Compare"):
            await open_screen(app, pilot, title)
            screen = app.screen
            if title == "Runs":  # the help screen itself, once (it costs seconds here); its rows are these
                await pilot.press("question_mark")
                await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
                assert app.screen.current is screen
                await pilot.press("escape")
                await wait_for(pilot, lambda s=screen: app.screen is s, what="the help to close")
            shown = help_sections(PrunelabApp.BINDINGS, screen)
            assert shown[1][0] == title  # the screen's own keys come first
            sections = {t: [k for k, _ in rows] for t, _, rows in shown}

            for section in [title] + (["Everywhere"] if title == "Plots" else []):
                displays = [{"plus,equals_sign": "+"}.get(keys) or ", ".join(KEY_NAMES.get(k, k) for k in keys.split(
                    ",")) for keys in (spec.split(" ")[0] for spec in KEYS[section])]
                assert sections[section] == displays, section  # every key listed, in order, and no other
                for spec in KEYS[section]:
                    keys, action = spec.split(" ", 1)
                    namespace, name, params = parse(action)
                    target = PrunelabApp if namespace == "app" or section == "Everywhere" else next(
                        c for c in (type(screen), RunTable) if hasattr(c, f"action_{name}"))
                    calls = []
                    with monkeypatch.context() as mp:
                        mp.setattr(target, f"action_{name}", lambda self, *args, n=name, c=calls: c.append((n, args)))
                        for key in keys.split(","):
                            calls.clear()
                            await pilot.press(key)
                            for _ in range(50):  # a key can take a few message hops to reach its binding
                                if calls:
                                    break
                                await pilot.pause(0.02)
                            assert calls == [(name, params)], (title, key, action, calls)
                            assert app.screen is screen, (title, key)  # the recorder ran instead: nothing moved
                            pressed += 1
        assert pressed == sum(len(k.split(" ")[0].split(",")) for keys in KEYS.values() for k in keys)


async def test_s_sorts_the_rows_and_shift_s_reverses_them():
    """On the fixed runs: `s` moves to the next column and orders the rows by it, `S` reverses the rows."""
    from tui.widgets.run_table import COLUMNS

    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, what="the runs")
        table = app.screen.query_one("RunTable")
        await wait_for(pilot, lambda: table.row_count == len(RUNS), what="every row")

        def shown() -> list[str]:
            return [table.coordinate_to_cell_key((row, 0)).row_key.value for row in range(table.row_count)]

        by_start = [r.run_id for r in sorted(RUNS, key=lambda r: r.start_time, reverse=True)]
        assert table.sort_key == "started" and shown() == by_start  # newest first
        await pilot.press("S")
        await pilot.pause()
        assert table.sort_key == "started" and shown() == by_start[::-1]  # oldest first
        await pilot.press("S")
        await pilot.pause()
        assert shown() == by_start
        table.sort_by("best")  # largest first by default; runs without an accuracy last
        await pilot.pause()
        by_best = [r.run_id for r in sorted(RUNS, key=lambda r: (r.best_pruned or -1.0, r.start_time),
                                           reverse=True)]
        assert [c[3] for c in COLUMNS if c[0] == "best"] == [True]
        assert shown()[:2] == by_best[:2] == [RUNS[1].run_id, RUNS[0].run_id]  # best pruned 56.3 % over 51.2 %
        await pilot.press("S")
        await pilot.pause()
        assert shown()[2:] == [RUNS[0].run_id, RUNS[1].run_id] and table.sort_reverse is False
        await pilot.press("s")  # the next column after "best": trials done, largest first
        await pilot.pause()
        assert table.sort_key == "trials" and shown()[0] == RUNS[2].run_id  # 4 of 12 done


async def test_best_means_best_pruned_wherever_a_run_is_summed_up():
    """Item 9: a run whose best setting is full data (the fixed runs, like most) is not announced as "best 60.7%";
    the run title, the palette and Compare say full data and best pruned, as the runs table's columns do."""
    from tui.commands import PrunelabCommands
    from tui.screens.compare import CompareScreen

    run = RUNS[0]
    assert run.best_accuracy == run.full_accuracy > run.best_pruned  # best_test_accuracy is the full-data run's
    said = "full 60.7% · best pruned 51.2%"
    app = PrunelabApp(backend=FixedBackend())
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.recent_runs, what="the runs")
        provider = PrunelabCommands(app.screen)
        provider.runs = app.recent_runs
        help_text = next(c.help for c in provider.run_commands() if run.run_id[:8] in c.name)
        assert help_text == f"{run.name} · FINISHED · {said}: show its plots"

        app.open_run(run.run_id, "plots")
        await wait_for(pilot, lambda: app.screen.run is not None, what="the run's title")
        assert app.screen.title_text() == f"quick · prune · mnist-mini / mlp · run a1b2c3d4 · FINISHED · {said}"

        app.action_runs()
        app.push_screen(CompareScreen([RUNS[0].run_id, RUNS[1].run_id]))
        title = lambda: str(app.screen.query_one("#compare-title").render())  # noqa: E731
        await wait_for(pilot, lambda: title().startswith("comparing:"), what="the compare title")
        assert title() == f"comparing: quick ({said}) vs quick-b (full 57.4% · best pruned 56.3%)"
