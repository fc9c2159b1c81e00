"""The runs screen: every experiment run in the store, live, filterable, sortable, markable."""
from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Header, Input, Static
from textual.worker import Worker

from engine import names

from ..messages import RunsLoaded
from ..widgets.footer import FitFooter
from ..widgets.run_table import RunTable
from .base import BaseScreen

REFRESH_S = 3.0


class RunsScreen(BaseScreen):
    """Parent runs from MLflow, refreshed every few seconds by a thread worker."""

    HELP = "Experiment runs in the store. Enter opens a run's plots; space marks runs for comparison."
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("slash", "filter", "Filter", key_display="/", id="runs.filter",
                tooltip="Show only the runs matching some words"),
        Binding("enter", "open('plots')", "Open", show=False, id="runs.open", tooltip="Open the run's plots"),
        Binding("p", "open('plots')", "Plots", id="runs.plots", tooltip="Show the run's plots"),
        Binding("o", "open('overlap')", "Overlap", id="runs.overlap", tooltip="Show how much the run's scorers agree"),
        Binding("g", "open('gallery')", "Gallery", id="runs.gallery",
                tooltip="Show the run's top or bottom samples by a score"),
        Binding("l", "leaderboard", "Leaderboard", show=False, id="runs.leaderboard",
                tooltip="Show a benchmark run's method x keep-ratio leaderboard"),
        Binding("c", "compare", "Compare", id="runs.compare", tooltip="Compare the marked runs (or two runs)"),
        Binding("x", "cancel", "Cancel run", show=False, id="runs.cancel", tooltip="Cancel the running run"),
        Binding("f5", "reload", "Reload", show=False, id="runs.reload", tooltip="Read the runs from the store again"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="runs.clear-filter",
                tooltip="Clear the filter and show every run"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: words to match (status, name, kind, data, model, id)", id="filter")
        yield RunTable(id="runs-table")
        yield Static("loading runs…", id="runs-status", classes="status-line", markup=False)
        yield FitFooter()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        table = self.query_one(RunTable)
        table.now = self.now
        table.focus()
        self.loaded = False
        self.app.after_first_frame(self._start)

    def _start(self) -> None:
        self.action_reload()
        self.set_interval(REFRESH_S, self._tick)

    def _tick(self) -> None:
        if self.is_current and not self.busy("runs"):  # hidden behind another screen: no queries
            self.load_runs()

    def on_screen_resume(self) -> None:
        if self.loaded:
            self.action_reload()

    @property
    def table(self) -> RunTable:
        return self.query_one(RunTable)

    # ------------------------------------------------------------ loading
    def action_reload(self) -> None:
        self.load_runs()

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False, description="cannot read the runs")
    def load_runs(self) -> None:
        self.post_result(RunsLoaded(self.backend.list_runs()))

    def on_runs_loaded(self, message: RunsLoaded) -> None:
        self.loaded = True
        self.app.recent_runs = message.runs  # what the command palette offers
        self.table.set_runs(message.runs)
        self._update_status()

    def worker_failed(self, worker: Worker) -> None:
        if worker.group == "runs":
            self.query_one("#runs-status", Static).update(f"cannot read the store {self.backend.uri}: {worker.error}")

    def _update_status(self) -> None:
        table = self.table
        shown, total = table.row_count, len(table.runs)
        if not total:
            text = f"No runs yet. Press n to start an experiment (store: {self.backend.uri})."  # the action first
        else:
            running = sum(r.status == names.RUNNING for r in table.runs.values())
            noun = "run" if total == 1 else "runs"
            text = f"{shown} of {total} {noun}" if table.filter_text else f"{total} {noun}"
            if running:
                text += f", {running} running"
            if table.marked:
                text += f" · {len(table.marked)} marked (c compares)"
        status = self.query_one("#runs-status", Static)
        status.set_class(not total, "wraps")  # the empty-state hint wraps rather than being cut at 80 columns
        status.update(text)

    # ------------------------------------------------------------ filter
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(event.value)
        self._update_status()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.table.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.value or box.display:
            box.value = ""
            box.display = False
            self.table.set_filter("")
            self.table.focus()
            self._update_status()

    def on_key(self, event) -> None:
        if event.key == "escape" and self.query_one("#filter", Input).has_focus:
            event.stop()
            self.action_clear_filter()

    # ------------------------------------------------------------ actions
    @on(DataTable.RowSelected, "#runs-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open("plots")

    @on(RunTable.MarksChanged)
    def _marks_changed(self) -> None:
        self._update_status()

    def action_open(self, view: str) -> None:
        run_id = self.table.current_run_id
        if run_id:
            self.app.open_run(run_id, view)

    def action_leaderboard(self) -> None:
        run = self.table.runs.get(self.table.current_run_id or "")
        if run is None:
            return
        if run.kind != "benchmark":
            self.notify(f"Only a benchmark run has a leaderboard (this is a {run.kind or 'plain'} run)",
                        severity="warning")
            return
        self.app.open_run(run.run_id, "leaderboard")

    def action_compare(self) -> None:
        marked = list(self.table.marked)
        if len(marked) < 2:
            current = self.table.current_run_id
            if current and current not in marked:
                marked.append(current)
        if len(marked) < 2:
            self.notify("Mark two or more runs with space, then press c", severity="warning")
            return
        from .compare import CompareScreen

        self.app.push_screen(CompareScreen(marked))

    def action_cancel(self) -> None:
        run_id = self.table.current_run_id
        run = self.table.runs.get(run_id or "")
        if not run or run.status != names.RUNNING:
            self.notify("Only a running run can be cancelled", severity="warning")
            return
        self.app.confirm_cancel(run_id, run.experiment)
