"""The command palette (ctrl+p): every screen, the app's and this screen's actions, and the recent runs.

Why from the bindings: an action added to a screen's BINDINGS shows up here,
with its tooltip as help, without a second list to keep in step.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from engine.errors import PrunelabError

RECENT_RUNS = 20  # how many of the newest runs the palette offers
LOAD_TIMEOUT_S = 3.0  # a slow store must not keep the palette from answering


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Callable[[], Any]


class PrunelabCommands(Provider):
    """Screens, actions and recent runs, matched fuzzily by name."""

    runs: list[Any]  # set by startup, before any search
    live: list[Any]  # the runs under way, from their progress files (a launch the runs list has not seen yet)

    async def startup(self) -> None:
        """The runs the runs screen last loaded (read from the store if it has not loaded yet), and the runs under
        way (the runs screen stops refreshing while another screen, the monitor after a launch, is shown)."""
        runs = getattr(self.app, "recent_runs", None)
        if runs is None:
            try:
                runs = await asyncio.wait_for(asyncio.to_thread(self.app.backend.list_runs), LOAD_TIMEOUT_S)
            except (TimeoutError, OSError, PrunelabError):  # no runs in the palette, the rest still works
                runs = []
        self.runs = list(runs)[:RECENT_RUNS]
        try:
            self.live = await asyncio.wait_for(asyncio.to_thread(self.app.backend.progress), LOAD_TIMEOUT_S)
        except (TimeoutError, OSError, PrunelabError):
            self.live = []

    # ------------------------------------------------------------ what it offers
    def screen_commands(self) -> list[Command]:
        app: Any = self.app
        return [
            Command("Runs", "Every experiment run in the store", app.action_runs),
            Command("Monitor", "Live progress of the running experiments", partial(app.switch_mode, "monitor")),
            Command("New experiment", "Set up and launch a new experiment", partial(app.switch_mode, "new")),
            Command("Help", "Every key of every screen", app.action_help),
            Command("Compare marked runs", "Overlay the curves of the runs marked on the runs screen",
                    self._compare),
            Command("Leaderboard", "Method x keep-ratio grid of this benchmark run (or the newest one)",
                    self._leaderboard),
            Command("Inspect a sample", "One training sample of this run (or the newest): its scores and "
                    "percentiles, nearest neighbours, and the trials that kept it", self._inspect),
            Command("Embedding map", "This run's (or the newest run's) samples on the 2-D projection of the "
                    "surrogate's embeddings, a trial's kept and pruned marked", self._map),
        ]

    def _this_run(self) -> str | None:
        """The run the current screen is about, else the newest run (None, with a notice, when there is none)."""
        run_id = getattr(self.app.screen, "run_id", None)
        if run_id is None and self.runs:
            run_id = self.runs[0].run_id
        if run_id is None:
            self.app.notify("No run in the store yet: launch one (n)", severity="warning")
        return run_id

    def _inspect(self) -> None:
        """The screen's own way where it has one (the gallery's ranking, the leaderboard's method, the map's
        cursor, the inspector's index field), else the run's sample 0."""
        app: Any = self.app
        own = getattr(app.screen, "action_inspect", None) or getattr(app.screen, "action_goto", None)
        if own is not None:
            own()
            return
        run_id = self._this_run()
        if run_id is not None:
            app.inspect_sample(run_id)

    def _map(self) -> None:
        """The inspector's own `e` (back to the map it came from, the cursor on its sample), else the run's map."""
        app: Any = self.app
        own = getattr(app.screen, "action_map", None)
        if own is not None:
            own()
            return
        run_id = self._this_run()
        if run_id is not None:
            app.open_run(run_id, "map")

    def _leaderboard(self) -> None:
        """The current run's leaderboard if it is a benchmark run, else the newest benchmark run's."""
        app: Any = self.app
        current = getattr(app.screen, "run", None)
        if current is not None and getattr(current, "kind", "") == "benchmark":
            app.open_run(current.run_id, "leaderboard")
            return
        found = [(r.start_time or 0.0, r.run_id) for r in self.runs if r.kind == "benchmark"]
        found += [(p.started or 0.0, p.run_id) for p in getattr(self, "live", []) if p.kind == "benchmark"]
        if not found:
            app.notify("No benchmark run in the store yet: run one (e.g. the benchmark-mnist preset)",
                       severity="warning")
        else:
            app.open_run(max(found)[1], "leaderboard")

    def _compare(self) -> None:
        app: Any = self.app
        app.action_runs()
        app.screen.action_compare()

    def action_commands(self) -> list[Command]:
        """The app's bindings, then the current screen's (those the screen commands already cover left out)."""
        covered = {"help", "runs", "switch_mode('monitor')", "switch_mode('new')", "leaderboard", "inspect",
                   "app.open_run_view('map')", "map"}
        out, seen = [], set()
        for node in (self.app, self.screen):
            for binding in node.BINDINGS:
                if isinstance(binding, tuple):
                    binding = Binding(*binding)
                if binding.action in covered or (node, binding.action) in seen:
                    continue
                seen.add((node, binding.action))
                key = self.app.get_key_display(binding)
                help_text = f"{binding.tooltip or binding.description} ({key})"
                out.append(Command(binding.description or binding.action, help_text,
                                   partial(self.app.run_action, binding.action, node)))
        return out

    def run_commands(self) -> list[Command]:
        from .fmt import accuracies, short_id

        app: Any = self.app
        out = []
        for run in self.runs:
            about = " · ".join(filter(None, [run.name, run.status, accuracies(run)]))
            out.append(Command(f"Open run {run.experiment or run.name} ({short_id(run.run_id)})",
                               f"{about}: show its plots",
                               partial(app.open_run, run.run_id, "plots")))
            if run.kind == "benchmark":
                out.append(Command(f"Leaderboard of {run.experiment or run.name} ({short_id(run.run_id)})",
                                   f"{run.name} · {run.status}: methods x keep ratios, ranked against random",
                                   partial(app.open_run, run.run_id, "leaderboard")))
        return out

    def commands(self) -> list[Command]:
        return self.screen_commands() + self.action_commands() + self.run_commands()

    # ------------------------------------------------------------ the Provider API
    async def discover(self) -> Hits:
        for command in self.screen_commands() + self.action_commands() + self.run_commands()[:5]:
            yield DiscoveryHit(command.name, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self.commands():
            score = matcher.match(command.name)
            if score > 0:
                yield Hit(score, matcher.highlight(command.name), command.run, text=command.name, help=command.help)
