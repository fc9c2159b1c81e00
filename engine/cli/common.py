"""What every command shares: the error handler and exit codes, JSON output, options, progress bars on stderr."""
from __future__ import annotations

import errno
import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self, TextIO

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column, Table

from ..cancel import absorb_signals
from ..errors import PrunelabError, UserError
from ..store import events as ev

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
ABSORB_S = 10.0  # after "interrupted", repeated signals are ignored this long while the process exits


# What a file system says about the user's folders (read-only, full, not theirs, a file where a folder goes):
# one line naming the file, as for the engine's own errors, wherever in a command it surfaced.
FILESYSTEM_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EEXIST,
                               errno.ENOTDIR, errno.EISDIR})


def handle_errors(fn):
    """Turn the engine's errors into one line on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PrunelabError as exc:
            click.echo(f"prunelab: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            absorb_signals(ABSORB_S)  # a repeat while this process exits must not make it 143 or a traceback
            click.echo("prunelab: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except OSError as exc:
            if exc.errno not in FILESYSTEM_ERRNOS:
                raise
            click.echo(f"prunelab: error: {filesystem_message(exc)}", err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


def filesystem_message(exc: OSError) -> str:
    """One line for an OSError about the user's files: which file or folder, what is wrong, what to do."""
    from ..store.tracking import full_folder, no_space_error

    name = exc.filename or ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        folder = Path(name).parent if name else Path.cwd()
        return str(no_space_error(full_folder([folder]) or folder))
    what = (exc.strerror or str(exc)).lower()
    if exc.errno == errno.EROFS:
        return f"{name}: {what}; run from a folder you can write, or pass --tracking-uri to a writable store"
    return f"{name}: {what}; check it, or move it away" if name else what


def check_out_path(path: str | None, option: str = "--out") -> None:
    """Fail before any work, not after it: the folder an output file goes in must exist and be writable."""
    if not path:
        return
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UserError(f"{option} {path}: is a folder; give a file name")
    if not folder.is_dir():
        raise UserError(f"{option} {path}: folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UserError(f"{option} {path}: not writable; choose another path")


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def duration(seconds: float) -> str:
    """Seconds in words a log reader takes in at a glance: 42 s, 3 min 05 s, 2 h 07 min."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class PlainProgress:
    """An event sink writing plain lines for a log file, when stderr is not a terminal (`2>log`, nohup, a batch
    job, a detached run's log): no bars, no control characters, one line per event worth reading.

    Every stage (surrogate, scoring, selecting, ...) gets a line, repeats of one stage (selecting 1 of 375, 2 of 375
    ...) at most one per `every` seconds; every finished trial a line; epochs one line per `every` seconds (a
    surrogate's last epoch always); and a long epoch a batch line at most every `heartbeat` seconds, so a log is
    never silent longer than that while work goes on. Each line starts with the time since the sink began and
    ends with the ETA it can estimate: the epoch's trial from its epochs so far, the run from its trials (the
    finished ones plus the running one's share of its epochs).
    """

    def __init__(self, stream: TextIO | None = None, every: float = 10.0, heartbeat: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.stream, self.every, self.heartbeat, self.clock = stream, every, heartbeat, clock
        self.start = clock()
        self.last_line = self.start
        self.last: dict[str, float] = {}  # what was last printed when: "stage:<name>", "epoch"
        self.total = 0  # the run's trials
        self.done = 0
        self.trials_start: float | None = None  # when the first trial began training
        self.trial: int | None = None
        self.trial_name = ""
        self.trial_start = self.start
        self.fraction = 0.0  # of the running trial's epochs
        self.stage = ""
        self.stage_start = self.start

    # ------------------------------------------------------------ writing
    def write(self, text: str) -> None:
        now = self.clock()
        self.last_line = now
        stream = self.stream or sys.stderr
        stream.write(f"[{duration(now - self.start)}] {_CONTROL.sub(' ', text)}\n")
        stream.flush()

    def _due(self, key: str, force: bool = False) -> bool:
        now = self.clock()
        if force or key not in self.last or now - self.last[key] >= self.every:
            self.last[key] = now
            return True
        return False

    def run_eta(self) -> str:
        """"run eta 3 min 05 s" from the trials so far; "" until a trial has made progress."""
        if not self.total or self.trials_start is None:
            return ""
        progress = (self.done + self.fraction) / self.total
        if progress <= 0 or progress >= 1:
            return ""
        spent = self.clock() - self.trials_start
        return f"run eta {duration(spent * (1 - progress) / progress)}"

    def _trial_text(self) -> str:
        return f"trial {self.trial + 1}/{self.total or '?'} {self.trial_name}" if self.trial is not None else ""

    # ------------------------------------------------------------ events
    def __call__(self, event: ev.Event) -> None:
        for kind, draw in self.DRAW:
            if isinstance(event, kind):
                draw(self, event)
                return

    def _run_started(self, event: ev.RunStarted) -> None:
        self.total = event.trials or self.total
        self.write(f"run {event.run_id} ({event.kind} {event.experiment}): {event.trials} trials, pid {event.pid}")

    def _stage_started(self, event: ev.StageStarted) -> None:
        if event.trial is not None:  # a trial begins (the worker's stage: retrain, online, dynamic)
            now = self.clock()
            self.trial, self.trial_name, self.trial_start, self.fraction = event.trial, event.detail, now, 0.0
            self.total = max(self.total, event.trials or 0)  # a study's parts count their own trials: the run's stay
            if self.trials_start is None:
                self.trials_start = now
            return
        self.trial = None
        new = event.stage != self.stage
        self.stage, self.stage_start = event.stage, self.clock()
        if self._due(f"stage:{event.stage}", force=new):
            self.write(" ".join(x for x in (event.stage, event.detail) if x))

    def _epoch_end(self, event: ev.EpochEnd) -> None:
        in_trial = event.trial is not None and self.trial is not None
        if in_trial:
            self.fraction = event.epoch / max(1, event.epochs)
        if not self._due("epoch", force=not in_trial and event.epoch == event.epochs):
            return
        metrics = event.metrics
        parts = [f"epoch {event.epoch}/{event.epochs}"]
        if "train_loss" in metrics:
            parts.append(f"train loss {metrics['train_loss']:.4f}")
        if metrics.get("test_accuracy") is not None:
            parts.append(f"test acc {metrics['test_accuracy']:.2%}")
        start = self.trial_start if in_trial else self.stage_start
        if 0 < event.epoch < event.epochs:
            spent = self.clock() - start
            parts.append(f"eta {duration(spent / event.epoch * (event.epochs - event.epoch))}")
        where = self._trial_text() if in_trial else self.stage
        self.write(" · ".join(x for x in (where, ", ".join(parts), self.run_eta() if in_trial else "") if x))

    def _batch_progress(self, event: ev.BatchProgress) -> None:
        if self.clock() - self.last_line < self.heartbeat:
            return
        where = self._trial_text() or self.stage
        what = "images" if self.stage == "decoding" else f"epoch {event.epoch}/{event.epochs} batch"
        self.write(" · ".join(x for x in (where, f"{what} {event.batch}/{event.batches}") if x))

    def _trial_finished(self, event: ev.TrialFinished) -> None:
        self.done += 1
        self.total = max(self.total, event.trials or 0)
        self.trial, self.fraction = None, 0.0
        accuracy = (event.metrics or {}).get("test_accuracy")
        outcome = f"{accuracy:.2%}" if event.status == "FINISHED" and accuracy is not None else event.status
        if event.message and event.status != "FINISHED":
            outcome += f" ({event.message})"
        name = event.name or f"trial {event.trial + 1}"
        self.write(" · ".join(x for x in (f"trial {self.done}/{self.total} done: {name} {outcome}",
                                          self.run_eta()) if x))

    def _log_line(self, event: ev.LogLine) -> None:
        if event.level != "warning":  # warnings are on stderr already
            self.write(event.message)

    DRAW: ClassVar[tuple[tuple[type, Callable[..., None]], ...]] = (
        (ev.RunStarted, _run_started), (ev.TrialFinished, _trial_finished), (ev.StageStarted, _stage_started),
        (ev.EpochEnd, _epoch_end), (ev.BatchProgress, _batch_progress), (ev.LogLine, _log_line))


class ProgressBars:
    """An event sink drawing the TUI's three bars on stderr: trials, epoch and batch, each with its own time.

    The stage (surrogate, scoring, retrain ...) is the trials bar's text, not a bar of its
    own; the epoch bar counts finished epochs (epoch 2 of 2 under way is 1/2); the batch
    bar restarts its clock each epoch; a finished trial's epoch and batch bars go away
    until the next one trains, and the trials bar names the last trial that finished.

    When stderr is not a terminal (and `enabled` is not given) the events go to a `PlainProgress` instead: plain
    lines for a log file.
    """

    def __init__(self, enabled: bool | None = None, console: Console | None = None):
        console = console or Console(stderr=True)
        self.enabled = console.is_terminal if enabled is None else enabled
        self.plain = PlainProgress() if enabled is None and not self.enabled else None
        info = Column(no_wrap=True, overflow="ellipsis", ratio=1)  # a long trial name is cut, not the bars
        self.progress = Progress(TextColumn("{task.description}", table_column=Column(no_wrap=True)),
                                 BarColumn(bar_width=20), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}", table_column=info),
                                 console=console, transient=True, disable=not self.enabled, expand=True)
        self.console = console
        self.tasks: dict[str, Any] = {}
        self.finished = 0
        self.run_trials = 0
        self.stage = ""
        self.last = ""
        self.batch_epoch: int | None = None
        self.stage_name = ""

    def __enter__(self) -> Self:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def _bar(self, key: str, description: str, total: int, completed: int, info: str | None = None) -> None:
        """Show and update a bar; info None keeps the text it has."""
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(description, total=total, info=info or "")
        fields = {} if info is None else {"info": info}
        self.progress.update(self.tasks[key], description=description, total=total, completed=completed,
                             visible=True, **fields)

    def task(self, key: str) -> Any:
        """The rich Task behind a bar (for tests and for reading its state)."""
        return next(t for t in self.progress.tasks if t.id == self.tasks[key])

    def _restart(self, key: str) -> None:
        """Hide a bar and zero its clock: the next trial's or epoch's time is its own."""
        if key in self.tasks:
            self.progress.reset(self.tasks[key], completed=0, visible=False)

    def _trials_info(self) -> str:
        return " · ".join(x for x in (self.stage, f"last: {self.last}" if self.last else "") if x)

    def __call__(self, event: ev.Event) -> None:
        if self.plain is not None:
            self.plain(event)
            return
        for kind, draw in self.DRAW:
            if isinstance(event, kind):
                draw(self, event)
                return

    def _run_started(self, event: ev.RunStarted) -> None:
        self.run_trials = event.trials
        self._bar("trials", "trials", event.trials, self.finished, "")

    def _trial_finished(self, event: ev.TrialFinished) -> None:
        """Trials finish out of order on Ray, and a resume skips some: count them, and name the last one."""
        self.finished += 1
        accuracy = (event.metrics or {}).get("test_accuracy")
        name = event.name or f"trial {event.trial + 1}"
        finished = event.status == "FINISHED" and accuracy is not None
        self.last = f"{name} {accuracy:.2%}" if finished else f"{name} {event.status}"
        # a study's parts count their own trials (event.trials); the bar counts the run's
        self._bar("trials", "trials", max(self.run_trials, event.trials), self.finished, self._trials_info())
        self._restart("epoch")
        self._restart("batch")

    def _stage_started(self, event: ev.StageStarted) -> None:
        self.stage_name = event.stage
        self.stage = " ".join(x for x in (event.stage, event.detail) if x)
        if "trials" in self.tasks:
            self.progress.update(self.tasks["trials"], info=self._trials_info())
        if event.stage not in ("decoding", "selecting"):  # decoding's bar is over images (below); selecting
            # says "k of n" in the trials bar's text
            self._bar("epoch", "epochs", 1, 0, self._beside_trials(""))  # a lone `score` names its stage
        self._restart("epoch")
        self._restart("batch")
        self.batch_epoch = None

    def _epoch_end(self, event: ev.EpochEnd) -> None:
        accuracy = event.metrics.get("test_accuracy")
        info = f"train loss {event.metrics.get('train_loss', float('nan')):.4f}"
        if accuracy is not None:
            info += f" test acc {accuracy:.2%}"
        self._bar("epoch", "epochs", event.epochs, event.epoch, self._beside_trials(info))

    def _beside_trials(self, info: str) -> str:
        """An epoch bar's text: under a trials bar (which names the stage) the info alone, else the stage too."""
        return info if "trials" in self.tasks else " · ".join(x for x in (self.stage, info) if x)

    def _batch_progress(self, event: ev.BatchProgress) -> None:
        if self.stage_name == "decoding":  # an image folder's first load: a bar over its images
            self._bar("batch", "images", event.batches, event.batch, self.stage)
            return
        if event.epoch != self.batch_epoch:  # a new epoch: the batch bar's time starts again
            self._restart("batch")
            self.batch_epoch = event.epoch
        self._bar("epoch", "epochs", event.epochs, event.epoch - (event.batch < event.batches))
        self._bar("batch", f"epoch {event.epoch}/{event.epochs}", event.batches, event.batch, "")

    def _log_line(self, event: ev.LogLine) -> None:
        if self.enabled and event.level != "warning":  # warnings are on stderr already
            self.progress.console.print(event.message)

    # which method draws which event; other events draw nothing
    DRAW: ClassVar[tuple[tuple[type, Callable[..., None]], ...]] = (
        (ev.RunStarted, _run_started), (ev.TrialFinished, _trial_finished), (ev.StageStarted, _stage_started),
        (ev.EpochEnd, _epoch_end), (ev.BatchProgress, _batch_progress), (ev.LogLine, _log_line))


data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                               help="Read data from this folder (torchvision's layout), read-only.")
device_option = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")


def tracking_uri_of(ctx: click.Context) -> str | None:
    """The group's --tracking-uri, from any subcommand."""
    return ctx.find_root().obj.get("tracking_uri") if ctx.find_root().obj else None


def print_summary(rows: list[dict[str, Any]], title: str = "") -> None:
    """The summary as a rich table on stdout."""
    table = Table(title=title or None)
    if not rows:
        click.echo("no finished trials yet")
        return
    for key in rows[0]:
        whole = max(len(str(row.get(key, ""))) for row in rows) if key == "run_id" else None  # never cut an id
        table.add_column(key, justify="right" if isinstance(rows[0][key], (int, float)) else "left",
                         min_width=whole, no_wrap=key == "run_id")
    for row in rows:
        table.add_row(*[_cell(k, v, row) for k, v in row.items()])
    Console().print(table)


def one_seed(row: dict[str, Any]) -> bool:
    """A row that averaged a single seed: its standard deviation is no measurement (shown as "—")."""
    return row.get("seeds") is not None and row["seeds"] < 2


def _cell(key: str, value: Any, row: dict[str, Any] | None = None) -> str:
    if key.startswith("std") and row is not None and one_seed(row):
        return "—"
    if isinstance(value, float):
        return f"{value:.2%}" if "accuracy" in key else f"{value:.4g}"
    return str(value)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--tracking-uri", default=None, help="MLflow store (default: sqlite:///mlruns/mlflow.db here).")
@click.version_option(package_name="prunelab")
@click.pass_context
def main(ctx: click.Context, tracking_uri: str | None) -> None:
    """prunelab: train surrogates, score every sample, prune, retrain, compare.

    With no command, opens the terminal UI on the store in this folder (the `prunelab` script).
    """
    ctx.ensure_object(dict)
    ctx.obj["tracking_uri"] = tracking_uri
    if ctx.invoked_subcommand is None:  # the `prunelab` console script adds `tui` (tui/cli.py)
        if "tui" in main.commands:
            ctx.invoke(main.commands["tui"])
        else:
            click.echo(ctx.get_help())
