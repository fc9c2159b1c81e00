"""What every prunelab screen shares: the typed backend, the one worker-error handler, and run titles.

Why: every query runs in a thread worker that posts its result as a typed
Message (tui.messages) and lets errors raise; the screen handles results in
`on_<message>` methods and `WorkerErrors` reports every failure the same way.
A screen no longer mounted never reads its messages, so late results are dropped.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.worker import get_current_worker

from ..messages import RunLoaded, WorkerErrors

if TYPE_CHECKING:
    from ..backend import BackendProtocol


class BaseScreen(WorkerErrors, Screen):
    """A screen that reads the store through `self.backend`, off the UI thread."""

    HELP = ""  # one line shown at the top of this screen's section in the help

    @property
    def backend(self) -> BackendProtocol:
        return self.app.backend

    def now(self) -> float:
        return self.app.now()

    def busy(self, group: str) -> bool:
        """Whether this screen already has a worker of this group in flight.

        Why: a timer that starts a query every few seconds must not pile up threads
        when the store is slow (a remote tracking server timing out).
        """
        from textual.worker import WorkerState

        return any(w.node is self and w.group == group and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                   for w in self.app.workers)

    def post_result(self, message: Message) -> None:
        """From a thread worker: post its result, unless a newer worker of its group replaced it (exclusive)
        or the screen is closing (a thread cannot be stopped, only told it was cancelled)."""
        if not get_current_worker().is_cancelled:
            self.post_message(message)


class RunScreen(BaseScreen):
    """A screen about one run: a title line, and p/o/g to switch between its views."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("p", "app.open_run_view('plots')", "Plots", id="run.plots", tooltip="Show this run's plots"),
        Binding("o", "app.open_run_view('overlap')", "Overlap", id="run.overlap",
                tooltip="Show how much this run's scorers agree"),
        Binding("g", "app.open_run_view('gallery')", "Gallery", id="run.gallery",
                tooltip="Show the top or bottom samples by a score"),
    ]
    view = ""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: Any = None

    def title_text(self) -> str:
        from ..fmt import accuracies

        r = self.run
        if r is None:
            return f"run {self.run_id[:8]}"
        return " · ".join(filter(None, [r.experiment, r.kind, f"{r.dataset} / {r.model}", f"run {r.run_id[:8]}",
                                        r.status, accuracies(r)]))

    def set_run(self, run: Any) -> None:
        from ..widgets.title import TitleLine

        self.run = run
        for title in self.query(".run-title").results(TitleLine):
            title.update(self.title_text())

    def on_run_loaded(self, message: RunLoaded) -> None:
        self.set_run(message.run)
