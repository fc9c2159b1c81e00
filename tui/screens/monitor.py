"""The monitor: live progress of every running experiment, from the progress files.

It follows the files, not the process that started a run, so runs started from
the CLI, a script or an earlier TUI session all show, and reopening the TUI
re-attaches. Runs that ended in the last minutes stay, with their final status.
"""
from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from engine import names

from ..messages import ProgressPolled
from ..widgets.progress_panel import ProgressPanel
from .base import BaseScreen

POLL_S = 0.5


class MonitorScreen(BaseScreen):
    """One progress panel per live (or just ended) run; x cancels the focused one."""

    HELP = "Live experiments, whoever started them. Tab moves between runs."
    BINDINGS = [
        Binding("x", "cancel", "Cancel run", id="monitor.cancel", tooltip="Cancel the selected run (asks first)"),
        Binding("enter", "open", "Open plots", id="monitor.open", tooltip="Open the selected run's plots"),
        # priority: at 80x24 the panels overflow, and their scroll container would take down/up to scroll
        Binding("down,j", "focus_panel(1)", "Next run", show=False, priority=True, id="monitor.next",
                tooltip="Select the next run"),
        Binding("up,k", "focus_panel(-1)", "Previous run", show=False, priority=True, id="monitor.previous",
                tooltip="Select the previous run"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading progress files…", id="monitor-status", classes="status-line", markup=False)
        yield VerticalScroll(id="panels")
        yield Footer()

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

    def on_progress_polled(self, message: ProgressPolled) -> None:
        runs, now = message.runs, message.now
        container = self.query_one("#panels", VerticalScroll)
        panels = {p.run_id: p for p in container.query(ProgressPanel)}
        wanted = [p.run_id for p in runs if p.run_id]
        for run_id, panel in panels.items():
            if run_id not in wanted:
                panel.remove()
        for progress in runs:
            if not progress.run_id:
                continue
            panel = panels.get(progress.run_id)
            if panel is None:
                panel = ProgressPanel(progress.run_id)
                panel.update_progress(progress, now)  # held until the panel has mounted its children
                container.mount(panel)
            else:
                panel.update_progress(progress, now)
        live = sum(p.effective_status == names.RUNNING for p in runs)
        if not runs:
            text = "No experiments running. Press n to start one."
        else:
            text = f"{live} running" + (f", {len(runs) - live} ended lately" if len(runs) > live else "")
            text += " · x cancel · enter plots"
        self.query_one("#monitor-status", Static).update(text)

    # ------------------------------------------------------------ actions
    def _panel(self) -> ProgressPanel | None:
        node = self.focused
        while node is not None and not isinstance(node, ProgressPanel):
            node = node.parent
        if isinstance(node, ProgressPanel):
            return node
        panels = list(self.query(ProgressPanel))
        return panels[0] if panels else None

    def action_focus_panel(self, step: int) -> None:
        panels = list(self.query(ProgressPanel))
        if not panels:
            return
        current = self._panel()
        i = panels.index(current) if current in panels and current.has_focus else -step
        panels[(i + step) % len(panels)].focus()

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
