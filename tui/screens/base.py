"""What every prunelab screen shares: the backend, and handing thread results back to the UI safely.

Why: every query runs in a thread worker; by the time it returns, the user may
have left the screen or quit. `deliver` drops results for a screen no longer
mounted instead of crashing, and `fail` turns an error into a notice, not an exit.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from textual.screen import Screen


class BaseScreen(Screen):
    """A screen that reads the store through `self.backend`, off the UI thread."""

    HELP = ""  # one line shown at the top of this screen's section in the help

    @property
    def backend(self) -> Any:
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

    def deliver(self, callback: Callable[..., Any], *args: Any) -> None:
        """From a thread worker: run callback(*args) on the UI thread if this screen is still there."""
        async def run() -> None:
            if not self.is_mounted:
                return
            try:
                result = callback(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # a bug in drawing: say so, keep the app up
                self.log.error(f"{callback!r} failed: {exc!r}")
                self.app.notify(f"display error: {type(exc).__name__}: {exc}", severity="error", timeout=8,
                                markup=False)

        try:
            self.app.call_from_thread(run)
        except RuntimeError:  # the app is shutting down
            pass

    def fail(self, what: str, exc: BaseException) -> None:
        """From a thread worker: report an error as a notice (the UI stays up)."""
        message = f"{what}: {exc}" if str(exc) else f"{what}: {type(exc).__name__}"
        try:
            self.app.call_from_thread(self.app.notify, message, severity="error", timeout=8, markup=False)
        except RuntimeError:
            pass


class RunScreen(BaseScreen):
    """A screen about one run: a title line, and p/o/g to switch between its views."""

    BINDINGS = [
        ("p", "app.open_run_view('plots')", "Plots"),
        ("o", "app.open_run_view('overlap')", "Overlap"),
        ("g", "app.open_run_view('gallery')", "Gallery"),
    ]
    view = ""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: Any = None

    def title_text(self) -> str:
        from ..fmt import pct

        r = self.run
        if r is None:
            return f"run {self.run_id[:8]}"
        best = f" · best {pct(r.best_accuracy)}" if r.best_accuracy is not None else ""
        return (f"{r.experiment} · {r.kind} · {r.dataset} / {r.model} · run {r.run_id[:8]} · "
                f"{r.status}{best}")

    def set_run(self, run: Any) -> None:
        from textual.widgets import Static

        self.run = run
        for title in self.query(".run-title").results(Static):
            title.update(self.title_text())
