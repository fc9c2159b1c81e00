"""The `prunelab` command line: the only engine module that prints.

Every command is a thin layer over the engine's API. Errors a user can cause
print one line on stderr and exit 2; exit codes: 0 ok, 1 failed, 2 bad input,
130 interrupted. Progress bars go to stderr, `--json` output to stdout.
"""
from __future__ import annotations

import functools
import json
import sys
from typing import Any

import click

from .errors import PrunelabError

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


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


class ProgressBars:
    """An event sink drawing rich progress bars on stderr: stage, trials, epochs, batches."""

    def __init__(self, enabled: bool | None = None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        console = Console(stderr=True)
        self.enabled = console.is_terminal if enabled is None else enabled
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                 console=console, transient=True, disable=not self.enabled)
        self.console = console
        self.tasks: dict[str, Any] = {}

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
        from . import events as ev

        if isinstance(event, ev.RunStarted):
            self._bar("trials", "trials", event.trials, 0)
        elif isinstance(event, ev.TrialFinished):
            self._bar("trials", "trials", event.trials, event.trial + 1, event.status.lower())
        elif isinstance(event, ev.StageStarted):
            self._bar("stage", event.stage, 1, 0, event.detail)
        elif isinstance(event, ev.EpochEnd):
            acc = event.metrics.get("test_accuracy")
            info = f"loss {event.metrics.get('train_loss', float('nan')):.4f}" + (f" acc {acc:.2%}" if acc is not None else "")
            self._bar("epoch", "epochs", event.epochs, event.epoch, info)
        elif isinstance(event, ev.BatchProgress):
            self._bar("batch", f"epoch {event.epoch}/{event.epochs}", event.batches, event.batch)
        elif isinstance(event, ev.LogLine) and self.enabled:
            self.progress.console.print(event.message)


data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                               help="Read data from this folder (torchvision's layout), read-only.")
device_option = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--tracking-uri", default=None, help="MLflow store (default: sqlite:///mlruns/mlflow.db here).")
@click.version_option(package_name="prunelab")
@click.pass_context
def main(ctx: click.Context, tracking_uri: str | None) -> None:
    """prunelab: train surrogates, score every sample, prune, retrain, compare.

    With no command, opens the terminal UI on the store in this folder.
    """
    ctx.ensure_object(dict)
    ctx.obj["tracking_uri"] = tracking_uri
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui_command)


# ---------------------------------------------------------------- train
@main.command("train")
@click.option("--dataset", default="mnist-mini", show_default=True, help="mnist-mini, mnist, cifar10 or npz:PATH.")
@click.option("--model", default="cnn", show_default=True, help="cnn, resnet18 or mlp.")
@click.option("--epochs", default=1, show_default=True, type=int)
@click.option("--steps", default=None, type=int, help="Budget in optimizer steps instead of epochs.")
@click.option("--batch-size", default=128, show_default=True, type=int)
@click.option("--lr", default=0.05, show_default=True, type=float)
@click.option("--schedule", default="onecycle", show_default=True,
              type=click.Choice(["constant", "step", "cosine", "onecycle"]))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--train-size", default=None, type=int, help="Train on a class-stratified subset of this size.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (CUDA only).")
@data_dir_option
@device_option
@json_option
@handle_errors
def train_command(dataset, model, epochs, steps, batch_size, lr, schedule, seed, train_size, compile_,
                  data_dir, device, as_json):
    """Train one model and report its test accuracy."""
    from .train import TrainConfig, load_and_train

    cfg = TrainConfig(epochs=epochs, steps=steps, batch_size=batch_size, lr=lr, schedule=schedule, compile=compile_)
    with ProgressBars() as bars:
        result = load_and_train(dataset, model, cfg, seed=seed, data_dir=data_dir, device=device,
                                train_size=train_size, on_event=bars)
    summary = {"dataset": dataset, "model": model, "test_accuracy": result.test_accuracy,
               "test_loss": result.test_loss, "epochs": result.epochs, "steps": result.steps,
               "seconds": round(result.seconds, 3), "samples_per_second": round(result.samples_per_second, 1),
               "device": result.device, "history": result.history}
    if as_json:
        print_json(summary)
    else:
        click.echo(f"{dataset} {model}: test accuracy {result.test_accuracy:.2%} after {result.epochs} epoch(s), "
                   f"{result.seconds:.1f} s on {result.device} ({result.samples_per_second:,.0f} samples/s)")


# ---------------------------------------------------------------- bench
@main.group("bench")
def bench_group() -> None:
    """Measure prunelab's speed against textbook PyTorch on this machine."""


@bench_group.command("train")
@click.option("--dataset", default="mnist", show_default=True, type=click.Choice(["mnist", "cifar10"]))
@click.option("--model", default=None, help="Default: cnn for mnist, resnet18 for cifar10.")
@click.option("--batch-size", default=128, show_default=True, type=int)
@click.option("--samples", default=30000, show_default=True, type=int, help="Training samples timed per trainer.")
@data_dir_option
@device_option
@json_option
@handle_errors
def bench_train_command(dataset, model, batch_size, samples, data_dir, device, as_json):
    """Training samples/s: prunelab's trainer against a DataLoader loop."""
    from .bench import bench_train

    result = bench_train(dataset=dataset, model=model, batch_size=batch_size, samples=samples,
                         data_dir=data_dir, device=device)
    if as_json:
        print_json(result)
    else:
        click.echo(f"{result['dataset']} {result['model']} batch {batch_size} on {result['device']}: "
                   f"prunelab {result['ours']['samples_per_second']:,.0f} samples/s, "
                   f"DataLoader loop {result['baseline']['samples_per_second']:,.0f} samples/s, "
                   f"ratio {result['ratio']:.2f}x")


# ---------------------------------------------------------------- tui
@main.command("tui")
@click.pass_context
def tui_command(ctx: click.Context) -> None:
    """Open the terminal UI."""
    try:
        from tui.app import run_app
    except ImportError as exc:
        click.echo(f"prunelab: error: the terminal UI is not available ({exc})", err=True)
        sys.exit(EXIT_FAILED)
    run_app(tracking_uri=ctx.obj.get("tracking_uri"))


if __name__ == "__main__":
    main()
