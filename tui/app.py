"""The prunelab Textual app: global keys, screen routing, and the entry point `run_app`.

Three modes, each with its own screen stack: runs (with a run's plots, overlap
and gallery pushed on top, and compare), monitor and new experiment. Only
Textual loads before the first frame; the first runs table is read from the
SQLite file itself, and the backend (engine, MLflow, torch) is warmed up by a
thread worker after it, so startup stays under a second.
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding

from .commands import PrunelabCommands
from .messages import CancelSent, WorkerErrors
from .screens.runs import RunsScreen

if TYPE_CHECKING:
    from .backend import BackendProtocol


def _monitor() -> Any:
    from .screens.monitor import MonitorScreen

    return MonitorScreen()


def _new() -> Any:
    from .screens.new import NewExperimentScreen

    return NewExperimentScreen()


class PrunelabApp(WorkerErrors, App):
    """Launch, watch and analyse prunelab experiments."""

    CSS_PATH = "app.tcss"
    TITLE = "prunelab"
    # the others load when first shown
    MODES: ClassVar[dict[str, Any]] = {"runs": RunsScreen, "monitor": _monitor, "new": _new}
    DEFAULT_MODE = "runs"
    COMMANDS = App.COMMANDS | {PrunelabCommands}
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("question_mark", "help", "Help", key_display="?", id="app.help", tooltip="Every key of every screen"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit (launched experiments keep running)"),
        Binding("r", "runs", "Runs", id="app.runs", tooltip="The list of experiment runs"),
        Binding("m", "switch_mode('monitor')", "Monitor", id="app.monitor",
                tooltip="Live progress of the running experiments"),
        Binding("n", "switch_mode('new')", "New", id="app.new", tooltip="Set up and launch a new experiment"),
        Binding("escape", "back", "Back", show=False, id="app.back", tooltip="Back to the previous screen"),
    ]

    def __init__(self, tracking_uri: str | None = None, backend: BackendProtocol | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if backend is None:
            from .backend import Backend

            backend = Backend(tracking_uri)
        self.backend: BackendProtocol = backend
        self.sub_title = backend.uri
        self.recent_runs: list[Any] | None = None  # the runs screen's last list, for the command palette
        self._first_frame_done = False
        self._after_first_frame: list[Callable[[], Any]] = []

    def now(self) -> float:
        return self.backend.now()

    def after_first_frame(self, callback: Callable[[], Any]) -> None:
        """Run callback once the first frame is on screen (at once if it already is).

        Why: a worker importing MLflow competes with the UI thread for the GIL on
        a 2-core machine; started before the first frame, it delays that frame.
        """
        if self._first_frame_done:
            callback()
        else:
            self._after_first_frame.append(callback)

    def on_ready(self) -> None:
        self._first_frame_done = True
        for callback in self._after_first_frame:  # the runs list first: it reads the SQLite file, not MLflow
            callback()
        self._after_first_frame.clear()
        self.warm_up()

    @work(thread=True, exit_on_error=False, group="warm-up", description="cannot open the store")
    def warm_up(self) -> None:
        """Import MLflow and open the store after the first frame, not before it."""
        self.backend.warm_up()

    # ------------------------------------------------------------ routing
    def open_run(self, run_id: str, view: str = "plots") -> None:
        """Show one run's plots, overlap, gallery, embedding map or (a benchmark's) leaderboard, on top of the runs
        screen (escape goes back)."""
        from .screens.embedding_map import EmbeddingMapScreen
        from .screens.gallery import GalleryScreen
        from .screens.leaderboard import LeaderboardScreen
        from .screens.overlap import OverlapScreen
        from .screens.plots import PlotsScreen

        views = {"plots": PlotsScreen, "overlap": OverlapScreen, "gallery": GalleryScreen,
                 "leaderboard": LeaderboardScreen, "map": EmbeddingMapScreen}
        screen_cls = views[view]
        if self.current_mode != "runs":
            self.switch_mode("runs")
        if isinstance(self.screen, tuple(views.values())):
            self.switch_screen(screen_cls(run_id))
        else:
            self.push_screen(screen_cls(run_id))

    def inspect_sample(self, run_id: str, index: int | None = None, ranking: str | None = None,
                       lowest: bool = False) -> None:
        """Open one training sample of a run in the inspector, on top of the current screen (escape comes back):
        `index`, or the first of the samples ranked by the score `ranking` (highest first, or `lowest`), which
        its [ and ] then follow."""
        from .screens.inspector import InspectorScreen

        self.push_screen(InspectorScreen(run_id, index, ranking, lowest))

    def action_runs(self) -> None:
        """The runs list, from anywhere (a run's plots included)."""
        if self.current_mode != "runs":
            self.switch_mode("runs")
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def action_open_run_view(self, view: str) -> None:
        run_id = getattr(self.screen, "run_id", None)
        if run_id and getattr(self.screen, "view", "") != view:
            self.open_run(run_id, view)

    def action_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def confirm(self, question: str, answered: Callable[[bool | None], Any], yes: str = "Yes (y)",
                variant: str = "error") -> None:
        """A yes/no dialog over the current screen; `answered(True)` on yes."""
        from .screens.help import ConfirmScreen

        self.push_screen(ConfirmScreen(question, yes=yes, variant=variant), answered)

    def confirm_cancel(self, run_id: str, label: str = "", progress: Any = None) -> None:
        """Ask, then SIGTERM the run's process (the engine ends the run KILLED)."""
        from .screens.help import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self.cancel_run(run_id, progress)

        self.push_screen(ConfirmScreen(f"Cancel run {label or ''} {run_id[:8]}?\n"
                                       "Its process gets SIGTERM and the run ends KILLED."), answered)

    @work(thread=True, exit_on_error=False, group="cancel", description="cannot cancel")
    def cancel_run(self, run_id: str, progress: Any = None) -> None:
        if progress is None:
            progress = next((p for p in self.backend.progress() if p.run_id == run_id), None)
        self.post_message(CancelSent(self.backend.cancel(progress) if progress else "no progress file for this run"))

    def on_cancel_sent(self, message: CancelSent) -> None:
        self.notify(message.message, timeout=6, markup=False)


def run_app(tracking_uri: str | None = None, backend: BackendProtocol | None = None) -> None:
    """Open the TUI on a store (default: ./mlruns); `prunelab` and `prunelab tui` call this.

    `q` quits at once: the app runs on its own event loop (asyncio.run would join the
    worker threads first), and the process ends without waiting for a worker still
    importing MLflow or reading the store (18-25 s on a busy 2-core machine). Nothing
    is lost: workers only read, and launched runs are processes of their own.
    """
    import asyncio

    app = PrunelabApp(tracking_uri, backend=backend)
    loop = asyncio.new_event_loop()
    app.run(loop=loop)
    if any(thread.is_alive() for thread in threading.enumerate() if thread is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(app.return_code or 0)
    loop.close()


__all__ = ["PrunelabApp", "run_app"]
