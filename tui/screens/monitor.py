"""The monitor: live progress of every running experiment, from the progress files.

It follows the files, not the process that started a run, so runs started from
the CLI, a script or an earlier TUI session all show, and reopening the TUI
re-attaches. Runs that ended in the last minutes stay, with their final status.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Header, Static

from engine import names

from ..messages import EstimateReady, ProgressPolled
from ..widgets.footer import FitFooter
from ..widgets.progress_panel import LogTail, ProgressPanel
from .base import BaseScreen

if TYPE_CHECKING:
    from engine.api import RunProgress

POLL_S = 0.5
LOG_MIN_ROWS = 5  # the selected run's log never gets fewer rows than this (the screen scrolls instead)


def run_order(progress: RunProgress) -> tuple:
    """Running runs first, then the ended ones; newest first within each."""
    return progress.effective_status != names.RUNNING, -(progress.started or 0.0)


def status_line(runs: list[RunProgress], selected: str | None = None) -> str:
    """How many runs are live and ended lately, and the keys that act on the selected one (x only for a running
    one)."""
    if not runs:
        return "No experiments running. Press n to start one."
    live = sum(p.effective_status == names.RUNNING for p in runs)
    ended = f", {len(runs) - live} ended lately" if len(runs) > live else ""
    running = any(p.run_id == selected and p.effective_status == names.RUNNING for p in runs)
    return f"{live} running{ended} · j/k select{' · x cancel' if running else ''} · enter plots"


class MonitorScreen(BaseScreen):
    """One progress panel per live (or just ended) run; x and enter act on the selected one.

    The selection is the screen's, not the focus: panels hold no focus, so j/k/up/down
    and a click always reach it. A newly seen running run is selected, as a launch
    expects; ended runs sit below, folded to their title and metrics unless selected.
    """

    HELP = "Live experiments, whoever started them. j/k or a click selects a run."
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("x", "cancel", "Cancel run", id="monitor.cancel", tooltip="Cancel the selected run (asks first)"),
        Binding("enter", "open", "Open plots", id="monitor.open", tooltip="Open the selected run's plots"),
        # priority: at 80x24 the panels overflow, and their scroll container would take down/up to scroll
        Binding("down,j", "select_panel(1)", "Next run", show=False, priority=True, id="monitor.next",
                tooltip="Select the next run"),
        Binding("up,k", "select_panel(-1)", "Previous run", show=False, priority=True, id="monitor.previous",
                tooltip="Select the previous run"),
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.selected: str | None = None
        self.runs: list[RunProgress] = []
        self.estimates: dict[str, float | None] = {}  # run id -> its estimated seconds, asked once per run

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading progress files…", id="monitor-status", classes="status-line", markup=False)
        panels = VerticalScroll(id="panels")
        panels.can_focus = False  # it would take up/down for scrolling; the selection scrolls it
        yield panels
        yield FitFooter()

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(POLL_S, self._tick)

    def _tick(self) -> None:
        if self.is_current and not self.busy("monitor"):  # hidden behind another screen: no polling
            self.poll()

    def on_screen_resume(self) -> None:
        if not self.busy("monitor"):
            self.poll()

    @work(thread=True, exclusive=True, group="monitor", exit_on_error=False,
          description="cannot read progress files")
    def poll(self) -> None:
        self.post_result(ProgressPolled(self.backend.progress(), self.now()))

    async def on_progress_polled(self, message: ProgressPolled) -> None:
        runs = sorted((p for p in message.runs if p.run_id), key=run_order)
        self.runs = runs
        fresh = await self._show_runs(runs, message.now)
        new_running = [p.run_id for p in fresh if p.effective_status == names.RUNNING]
        if new_running:  # a launch (from here or elsewhere) expects to see its run
            self.select(new_running[0])
        elif self.selected not in {p.run_id for p in runs}:
            self.select(runs[0].run_id if runs else None)
        else:
            self.select(self.selected, scroll=False)
        self._ask_estimates(runs)

    def _ask_estimates(self, runs: list[RunProgress]) -> None:
        """A running run with no trial ended yet gets an estimate from its preview, once."""
        wanted = [p.run_id for p in runs if p.effective_status == names.RUNNING and p.trials and not p.trials_done
                  and p.run_id not in self.estimates]
        if wanted and not self.busy("estimate"):
            self.estimates.update(dict.fromkeys(wanted))
            self.estimate(wanted)

    @work(thread=True, group="estimate", exit_on_error=False, description="cannot estimate the run's time")
    def estimate(self, run_ids: list[str]) -> None:
        """Each run's estimate; one that cannot be made (its config unreadable, its data gone) is no estimate,
        not an error notice: the ETA falls back to the stage's pace."""
        from engine.errors import PrunelabError

        for run_id in run_ids:
            try:
                seconds = self.backend.run_estimate(run_id)
            except (PrunelabError, OSError, LookupError, ValueError):
                seconds = None
            self.post_result(EstimateReady(run_id, seconds))

    def on_estimate_ready(self, message: EstimateReady) -> None:
        self.estimates[message.run_id] = message.seconds
        for panel in self.panels():
            if panel.run_id == message.run_id:
                panel.estimate = message.seconds

    async def _show_runs(self, runs: list[RunProgress], now: float) -> list[RunProgress]:
        """One panel per run, in the runs' order: panels of runs gone are removed, new ones mounted, all updated.
        Returns the runs that got a new panel."""
        container = self.query_one("#panels", VerticalScroll)
        panels = {p.run_id: p for p in container.query(ProgressPanel)}
        wanted = {p.run_id for p in runs}
        gone = [panel for run_id, panel in panels.items() if run_id not in wanted]
        if gone:
            await container.remove_children(gone)
        fresh = [p for p in runs if p.run_id not in panels]
        panels.update((p.run_id, ProgressPanel(p.run_id)) for p in fresh)
        for progress in runs:
            panels[progress.run_id].estimate = self.estimates.get(progress.run_id)
            panels[progress.run_id].update_progress(progress, now)  # a new panel holds it until it is mounted
        if fresh:
            await container.mount_all([panels[p.run_id] for p in fresh])
        for i, progress in enumerate(runs):
            if container.children[i] is not panels[progress.run_id]:
                container.move_child(panels[progress.run_id], before=i)
        return fresh

    # ------------------------------------------------------------ selection
    def panels(self) -> list[ProgressPanel]:
        return list(self.query_one("#panels", VerticalScroll).query_children(ProgressPanel))

    def select(self, run_id: str | None, scroll: bool = True) -> None:
        self.selected = run_id
        chosen = None
        for panel in self.panels():
            panel.set_selected(panel.run_id == run_id)
            chosen = panel if panel.run_id == run_id else chosen
        if chosen is not None and scroll:
            self.query_one("#panels", VerticalScroll).scroll_to_widget(chosen, animate=False)
        self.query_one("#monitor-status", Static).update(status_line(self.runs, run_id))
        self.refresh_bindings()  # x (cancel) is offered for a running run only
        self.call_after_refresh(self.fit_log)

    def on_resize(self) -> None:
        self.call_after_refresh(self.fit_log)

    def fit_log(self) -> None:
        """The selected run's log gets the rows the other panels leave free (at least LOG_MIN_ROWS, at most what
        its lines fill), so a tall terminal shows more of it rather than empty rows below."""
        chosen = self._panel()
        if chosen is None or not chosen.is_mounted or chosen.has_class("folded"):
            return
        container = self.query_one("#panels", VerticalScroll)
        log = chosen.query_one(LogTail)
        others = sum(p.outer_size.height + 1 for p in self.panels() if p is not chosen)  # +1: a panel's margin
        fixed = chosen.outer_size.height - log.outer_size.height + 1
        free = container.size.height - others - fixed
        rows = max(LOG_MIN_ROWS, min(free, log.rows_needed(log.content_size.width)))
        if log.styles.height is None or log.styles.height.value != rows:
            log.styles.height = rows

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Cancel only a running run: for an ended one the key is neither shown nor acted on."""
        if action == "cancel":
            panel = self._panel()
            return panel is not None and panel.status == names.RUNNING
        return True

    def on_progress_panel_clicked(self, message: ProgressPanel.Clicked) -> None:
        self.select(message.run_id)

    def _panel(self) -> ProgressPanel | None:
        return next((p for p in self.panels() if p.run_id == self.selected), None)

    def action_select_panel(self, step: int) -> None:
        panels = self.panels()
        if not panels:
            return
        ids = [p.run_id for p in panels]
        i = ids.index(self.selected) if self.selected in ids else -step
        self.select(ids[(i + step) % len(ids)])

    # ------------------------------------------------------------ actions
    def action_cancel(self) -> None:
        panel = self._panel()
        if panel is None or panel.progress is None:
            self.notify("No run to cancel", severity="warning")
            return
        if panel.status != names.RUNNING:
            self.notify(f"That run already ended ({panel.status})", severity="warning")
            return
        self.app.confirm_cancel(panel.run_id, panel.progress.experiment, panel.progress)

    def action_open(self) -> None:
        panel = self._panel()
        if panel is not None:
            self.app.open_run(panel.run_id, "plots")
