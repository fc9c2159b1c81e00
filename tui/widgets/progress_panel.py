"""One running (or just finished) experiment on the monitor: stage, bars, ETA, metrics and its log.

Why our own ETA: Textual's ProgressBar estimates from what it saw since it was
mounted, which is wrong after re-attaching to a run started hours ago; the
progress file has the run's start time and finished trials, so use those. Before
the first trial ends (surrogate training, scoring, selection) there is no trial
pace yet: the run's preview (its estimate, when one can be made) and the current
stage's own pace stand in for it.

Why our own log widget: a RichLog wraps a line at the width it had when the line
was written, so a line written before the panel was laid out, or before its
scrollbar appeared, stays cut ("acc 92."); `LogTail` wraps at render time, and
shows the newest lines that fit its height, which the monitor sets from the room
left on the screen.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Label, ProgressBar, Static

from engine import names

from ..fmt import duration, pct, short_id, status_text

if TYPE_CHECKING:
    from engine.api import RunProgress


LOG_LINES = 100  # the log lines a panel keeps


def eta_seconds(progress: RunProgress, now: float) -> float | None:
    """Time left from the trials' pace: the time since this session's first trial began per trial finished since,
    times the trials left (a progress without that start: since the run's start)."""
    done, total = progress.trials_done, progress.trials
    if not total or done >= total:
        return None
    ran, since = done - progress.trials_done_before, progress.trials_started
    if not since:
        ran, since = done, progress.started
    if not since or ran <= 0:
        return None
    return (now - since) / ran * (total - done)


def stage_fraction(progress: RunProgress) -> float | None:
    """How much of the current stage is done: epochs (and the batch within one) for a training stage, batches
    for a pass over the data (scoring, decoding)."""
    if progress.stage != "scoring" and progress.epochs:
        within = progress.batch / progress.batches if 0 < progress.batch < progress.batches else 0.0
        return min(1.0, (progress.epochs_done + within) / progress.epochs)
    if progress.batches:
        return min(1.0, progress.batch / progress.batches)
    return None


def stage_left(progress: RunProgress, now: float) -> float | None:
    """Time left in the current stage at its pace so far (None until it has run a second and done 2 %)."""
    fraction, spent = stage_fraction(progress), now - progress.stage_started
    if not progress.stage_started or fraction is None or fraction < 0.02 or spent < 1.0:
        return None
    return spent * (1 - fraction) / fraction


def eta_text(progress: RunProgress, now: float, estimate: float | None = None) -> str:
    """"ETA 10m00s" from the trials' pace; before a trial has ended, the run's estimate less the time spent ("~",
    "estimate"), else how long the stage has left."""
    eta = eta_seconds(progress, now)
    if eta is not None:
        return f"ETA {duration(eta)}"
    stage = stage_left(progress, now)
    if estimate is not None and progress.started:
        left = max(estimate - (now - progress.started), stage or 0.0)
        return f"ETA ~{duration(left)} (estimate)"
    if stage is not None:
        return f"ETA estimating… ({progress.stage} ends in ~{duration(stage)})"
    return "ETA estimating…"


def stage_line(progress: RunProgress) -> str:
    """What the run does now: "retrain · trial 5 of 12 · loss / hardest / keep 0.5 / seed 1 / e1"."""
    trial = f"trial {progress.trial + 1} of {progress.trials}" if progress.trial is not None and progress.trials else ""
    return " · ".join(x for x in (progress.stage or "starting", trial, progress.stage_detail) if x)


def metrics_line(progress: RunProgress, running: bool, now: float, estimate: float | None = None) -> str:
    """Elapsed time, the ETA while it runs, and the current stage's last train loss and test accuracy."""
    elapsed = ((now if running else progress.updated) - progress.started) if progress.started else None
    parts = [f"elapsed {duration(elapsed)}"]
    if running and progress.trials:  # kinds without trials (overlap) have no pace to go by
        parts.append(eta_text(progress, now, estimate))
    if "train_loss" in progress.metrics:
        parts.append(f"train loss {progress.metrics['train_loss']:.4f}")
    if "test_accuracy" in progress.metrics:
        parts.append(f"test acc {pct(progress.metrics['test_accuracy'], 2)}")
    return "   ".join(parts)


class LogTail(Widget):
    """The newest lines of a log that fit the widget, each wrapped at the width it has when drawn."""

    DEFAULT_CSS = """
    LogTail {
        height: 5;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lines: list[str] = []

    def set_lines(self, lines: list[str]) -> None:
        self.lines = list(lines[-LOG_LINES:])
        self.refresh()

    def wrapped(self, width: int) -> list[Text]:
        rows: list[Text] = []
        for line in self.lines:
            rows.extend(Text(line).wrap(self.app.console, max(1, width)))
        return rows

    def rows_needed(self, width: int) -> int:
        return len(self.wrapped(width))

    def render(self) -> Text:
        height = self.content_size.height
        rows = self.wrapped(self.content_size.width) if height else []
        return Text("\n", no_wrap=True).join(rows[-height:] if height else [])


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
        self.estimate: float | None = None  # the run's estimated seconds (its preview), set by the monitor
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
        yield LogTail(id="panel-log")

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
        self.query_one("#panel-metrics", Static).update(
            Text(metrics_line(progress, running, now, self.estimate), no_wrap=True, overflow="ellipsis"))
        self._show_log(progress.log)
        self.set_class(not running, "ended")
        self.set_class(not running and not self.has_class("selected"), "folded")

    def _show_log(self, lines: list[str]) -> None:
        """The run's last log lines, handed on only when the log changed."""
        signature = (len(lines), lines[-1] if lines else "")
        if signature != self._log_signature:
            self._log_signature = signature
            self.query_one("#panel-log", LogTail).set_lines(lines)

    def set_selected(self, selected: bool) -> None:
        self.set_class(selected, "selected")
        self.set_class(self.has_class("ended") and not selected, "folded")

    def on_click(self) -> None:
        self.post_message(self.Clicked(self.run_id))

    def _bar(self, name: str, done: int, total: int) -> None:
        bar = self.query_one(f"#bar-{name}", ProgressBar)
        bar.update(total=total or 1, progress=min(done, total) if total else 0)  # never indeterminate: no animation
        self.query_one(f"#count-{name}", Label).update(f"{done}/{total}" if total else "-")
