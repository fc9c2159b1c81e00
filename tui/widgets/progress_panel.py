"""One running (or just finished) experiment on the monitor: stage, bars, ETA, metrics and its log.

Why our own ETA: Textual's ProgressBar estimates from what it saw since it was
mounted, which is wrong after re-attaching to a run started hours ago; the
progress file has the run's start time and finished trials, so use those.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, ProgressBar, RichLog, Static

from engine import names

from ..fmt import duration, pct, short_id, status_text

if TYPE_CHECKING:
    from engine.api import RunProgress


def eta_seconds(progress: RunProgress, now: float) -> float | None:
    """Time left from the run's pace so far: elapsed per finished trial times the trials left."""
    done, total = progress.trials_done, progress.trials
    if not progress.started or not total or done <= 0 or done >= total:
        return None
    elapsed = now - progress.started
    return elapsed / done * (total - done)


def stage_line(progress: RunProgress) -> str:
    """What the run does now: "retrain · trial 5 of 12 · loss / hardest / keep 0.5 / seed 1 / e1"."""
    trial = f"trial {progress.trial + 1} of {progress.trials}" if progress.trial is not None and progress.trials else ""
    return " · ".join(x for x in (progress.stage or "starting", trial, progress.stage_detail) if x)


def metrics_line(progress: RunProgress, running: bool, now: float) -> str:
    """Elapsed time, the ETA while it runs, and the last train loss and test accuracy."""
    elapsed = ((now if running else progress.updated) - progress.started) if progress.started else None
    parts = [f"elapsed {duration(elapsed)}"]
    if running and progress.trials:  # kinds without trials (overlap) have no pace to go by
        eta = eta_seconds(progress, now)
        parts.append(f"ETA {duration(eta)}" if eta is not None else "ETA estimating…")
    if "train_loss" in progress.metrics:
        parts.append(f"train loss {progress.metrics['train_loss']:.4f}")
    if "test_accuracy" in progress.metrics:
        parts.append(f"test acc {pct(progress.metrics['test_accuracy'], 2)}")
    return "   ".join(parts)


class ProgressPanel(Vertical):
    """Live view of one progress file (folded into an engine.api.RunProgress).

    It holds no focus; the monitor selects it (class `selected`). An ended run folds
    to its title, stage and metrics unless it is the selected one.
    """

    class Clicked(Message):
        def __init__(self, run_id: str) -> None:
            super().__init__()
            self.run_id = run_id

    def __init__(self, run_id: str, **kwargs: Any) -> None:
        super().__init__(id=f"panel-{run_id}", classes="progress-panel", **kwargs)
        self.run_id = run_id
        self.progress: RunProgress | None = None
        self.status = names.RUNNING
        self._log_signature: tuple = ()
        self._ready = False  # children exist only once mounted; a poll can arrive before that
        self._pending: tuple[RunProgress, float] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="panel-title", classes="panel-title")
        yield Static(id="panel-stage", classes="panel-stage")
        for name in ("trials", "epoch", "batch"):
            with Horizontal(classes="bar-row"):
                yield Label(name, classes="bar-label")
                yield ProgressBar(total=1, show_eta=False, show_percentage=False, id=f"bar-{name}")
                yield Label("", id=f"count-{name}", classes="bar-count")
        yield Static(id="panel-metrics", classes="panel-metrics", markup=False)
        log = RichLog(id="panel-log", max_lines=500, wrap=True, markup=False, auto_scroll=True)
        log.can_focus = False  # tab moves between runs, not into their logs
        yield log

    def on_mount(self) -> None:
        # Textual mounts the composed children before the parent's Mount handler runs.
        self._ready = True
        if self._pending is not None:
            self.update_progress(*self._pending)

    def update_progress(self, progress: RunProgress, now: float) -> None:
        self.progress = progress
        self.status = progress.effective_status
        if not self._ready:
            self._pending = (progress, now)
            return
        self._pending = None
        title = Text.assemble((progress.experiment or "experiment", "bold"), "  ", progress.kind or "", "  ",
                              short_id(progress.run_id), "  ", status_text(self.status, self.app.theme_variables))
        self.query_one("#panel-title", Static).update(title)
        self.query_one("#panel-stage", Static).update(Text(stage_line(progress), no_wrap=True, overflow="ellipsis"))
        self._bar("trials", progress.trials_done, progress.trials)
        self._bar("epoch", progress.epochs_done, progress.epochs)
        self._bar("batch", progress.batch, progress.batches)
        running = self.status == names.RUNNING
        self.query_one("#panel-metrics", Static).update(metrics_line(progress, running, now))
        self._show_log(progress.log)
        self.set_class(not running, "ended")
        self.set_class(not running and not self.has_class("selected"), "folded")

    def _show_log(self, lines: list[str]) -> None:
        """The run's last 100 log lines, written again only when the log changed."""
        signature = (len(lines), lines[-1] if lines else "")
        if signature != self._log_signature:
            self._log_signature = signature
            log = self.query_one("#panel-log", RichLog)
            log.clear()
            for line in lines[-100:]:
                log.write(line)

    def set_selected(self, selected: bool) -> None:
        self.set_class(selected, "selected")
        self.set_class(self.has_class("ended") and not selected, "folded")

    def on_click(self) -> None:
        self.post_message(self.Clicked(self.run_id))

    def _bar(self, name: str, done: int, total: int) -> None:
        bar = self.query_one(f"#bar-{name}", ProgressBar)
        bar.update(total=total or 1, progress=min(done, total) if total else 0)  # never indeterminate: no animation
        self.query_one(f"#count-{name}", Label).update(f"{done}/{total}" if total else "-")
