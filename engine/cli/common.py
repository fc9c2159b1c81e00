"""What every command shares: the error handler and exit codes, JSON output, options, progress bars on stderr."""
from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..errors import PrunelabError, UserError
from ..store import events as ev

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


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
            click.echo("prunelab: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


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


class ProgressBars:
    """An event sink drawing rich progress bars on stderr: stage, trials, epochs, batches."""

    def __init__(self, enabled: bool | None = None):
        console = Console(stderr=True)
        self.enabled = console.is_terminal if enabled is None else enabled
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                 console=console, transient=True, disable=not self.enabled)
        self.console = console
        self.tasks: dict[str, Any] = {}
        self.finished = 0
        self.stage = ""

    def __enter__(self) -> "ProgressBars":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def _bar(self, key: str, description: str, total: int, completed: int, info: str = "") -> None:
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(description, total=total, info=info)
        self.progress.update(self.tasks[key], description=description, total=total, completed=completed, info=info)

    def __call__(self, event) -> None:
        if isinstance(event, ev.RunStarted):
            self._bar("trials", "trials", event.trials, 0)
        elif isinstance(event, ev.TrialFinished):  # trials finish out of order on Ray, and resume skips some
            self.finished += 1
            self._bar("trials", "trials", event.trials, self.finished, event.status.lower())
        elif isinstance(event, ev.StageStarted):
            self.stage = event.stage
            self._bar("stage", event.stage, 1, 0, event.detail)
        elif isinstance(event, ev.EpochEnd):
            acc = event.metrics.get("test_accuracy")
            info = f"loss {event.metrics.get('train_loss', float('nan')):.4f}" + (f" acc {acc:.2%}" if acc is not None else "")
            self._bar("epoch", "epochs", event.epochs, event.epoch, info)
        elif isinstance(event, ev.BatchProgress):
            what = "images" if self.stage == "decoding" else f"epoch {event.epoch}/{event.epochs}"
            self._bar("batch", what, event.batches, event.batch)
        elif isinstance(event, ev.LogLine) and self.enabled:
            self.progress.console.print(event.message)


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
        table.add_row(*[_cell(k, v) for k, v in row.items()])
    Console().print(table)


def _cell(key: str, value: Any) -> str:
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
