"""The `prunelab` command line: the only engine module that prints.

Every command is a thin layer over the engine's API. Errors a user can cause
print one line on stderr and exit 2; exit codes: 0 ok, 1 failed, 2 bad input,
130 interrupted. Progress bars go to stderr, `--json` output to stdout.
"""
from __future__ import annotations

import functools
import json
import sys
import time
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
        self.finished = 0

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
        elif isinstance(event, ev.TrialFinished):  # trials finish out of order on Ray, and resume skips some
            self.finished += 1
            self._bar("trials", "trials", event.trials, self.finished, event.status.lower())
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
    from . import api

    with ProgressBars() as bars:
        result = api.train(dataset, model, epochs=epochs, steps=steps, batch_size=batch_size, lr=lr,
                           schedule=schedule, compile=compile_, seed=seed, data_dir=data_dir, device=device,
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


# ---------------------------------------------------------------- score
def _epoch_list(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        epochs = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of epochs, such as 0,1,3") from None
    if not epochs:
        raise click.BadParameter("name at least one epoch, such as 1 or 0,1,3")
    return epochs


@main.command("score")
@click.option("--dataset", default="mnist-mini", show_default=True, help="mnist-mini, mnist, cifar10 or npz:PATH.")
@click.option("--model", default="cnn", show_default=True, help="cnn, resnet18 or mlp.")
@click.option("--scorers", default="loss,el2n,grad_norm", show_default=True,
              help="Comma-separated: random, loss, grad_norm, input_grad_norm, el2n, forgetting, or a registered one.")
@click.option("--epochs", "score_epochs", default="1", show_default=True, callback=_epoch_list,
              help="Surrogate epochs to score at, comma-separated (0 = the untrained surrogate).")
@click.option("--surrogate-epochs", type=click.IntRange(min=0), default=None,
              help="The surrogates' training budget in epochs (default: the largest of --epochs).")
@click.option("--inits", default=10, show_default=True, type=int,
              help="K surrogates that el2n and forgetting average over (others use the first).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--train-size", default=None, type=int, help="Score a class-stratified subset of this size.")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=1),
              help="Surrogate training batch size.")
@click.option("--score-batch-size", default=256, show_default=True, type=click.IntRange(min=1),
              help="Scoring batch size (does not change the scores).")
@click.option("--lr", default=0.05, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--embeddings", is_flag=True, help="Also save surrogate 0's penultimate features (embeddings@eT).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Reuse surrogates and scores cached in this folder (and add new ones).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write an .npz: <scorer>@e<t> per scorer and epoch, predictions@e<t>, labels, indices.")
@data_dir_option
@device_option
@json_option
@handle_errors
def score_command(dataset, model, scorers, score_epochs, surrogate_epochs, inits, seed, train_size, batch_size,
                  score_batch_size, lr, embeddings, cache_dir, out, data_dir, device, as_json):
    """Train surrogates and score every training sample at the given epochs."""
    import numpy as np

    from . import api
    from .device import resolve_device

    budget = surrogate_epochs if surrogate_epochs is not None else max(max(score_epochs), 0)
    with ProgressBars() as bars:
        result = api.score_result(dataset, model, scorers, epochs=score_epochs, inits=inits, seed=seed,
                                  surrogate_epochs=budget, batch_size=score_batch_size, embeddings=embeddings,
                                  cache=cache_dir, device=device, data_dir=data_dir, train_size=train_size,
                                  on_event=bars, lr=lr, train_batch_size=batch_size)
    where = str(resolve_device(device))
    if out:
        with open(out, "wb") as f:  # a file object: np.savez would append .npz to a bare name
            np.savez(f, **result.arrays())
    stats = {f"{name}@e{t}": {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
                              "max": float(v.max())}
             for name, per_epoch in result.scores.items() for t, v in per_epoch.items()}
    seconds = {k: round(v, 3) for k, v in result.seconds.items()}
    summary = {"dataset": dataset, "model": model, "samples": len(result.labels), "epochs": result.epochs,
               "surrogate_epochs": budget, "inits": result.inits, "seed": seed, "device": where,
               "surrogates_trained": result.surrogates_trained, "seconds": seconds, "scorers": stats, "out": out}
    if as_json:
        print_json(summary)
        return
    click.echo(f"{dataset} {model}: {summary['samples']} samples scored at epoch(s) "
               f"{','.join(map(str, result.epochs))} of {budget}; {result.surrogates_trained} surrogate(s) trained "
               f"in {seconds['training']:.1f} s, scoring {seconds['scoring']:.1f} s, total {seconds['total']:.1f} s "
               f"on {where}")
    click.echo(f"{'scorer':<24} {'mean':>10} {'std':>10} {'min':>10} {'max':>10}")
    for key, s in stats.items():
        click.echo(f"{key:<24} {s['mean']:>10.4g} {s['std']:>10.4g} {s['min']:>10.4g} {s['max']:>10.4g}")
    if out:
        click.echo(f"wrote {out}")


# ---------------------------------------------------------------- bench
@main.group("bench")
def bench_group() -> None:
    """Measure prunelab's speed against textbook PyTorch on this machine."""


@bench_group.command("train")
@click.option("--dataset", default="mnist", show_default=True, help="mnist, mnist-mini, cifar10 or npz:PATH.")
@click.option("--model", default=None, help="Default: cnn for MNIST, resnet18 otherwise.")
@click.option("--batch-size", default=128, show_default=True, type=int)
@click.option("--samples", default=30000, show_default=True, type=int, help="Training samples timed per trainer.")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile prunelab's model (CUDA only).")
@data_dir_option
@device_option
@json_option
@handle_errors
def bench_train_command(dataset, model, batch_size, samples, compile_model, data_dir, device, as_json):
    """Training samples/s: prunelab's trainer against a DataLoader loop."""
    from .bench import bench_train

    result = bench_train(dataset=dataset, model=model, batch_size=batch_size, samples=samples,
                         data_dir=data_dir, device=device, compile=compile_model)
    if as_json:
        print_json(result)
    else:
        click.echo(f"{result['dataset']} {result['model']} batch {batch_size} on {result['device']}: "
                   f"prunelab {result['ours']['samples_per_second']:,.0f} samples/s, "
                   f"DataLoader loop {result['baseline']['samples_per_second']:,.0f} samples/s, "
                   f"ratio {result['ratio']:.2f}x")


@bench_group.command("scores")
@click.option("--dataset", default=None, help="Default: mnist with --data-dir, else mnist-mini; or cifar10, npz:PATH.")
@click.option("--model", default=None, help="Default: cnn for MNIST, resnet18 otherwise.")
@click.option("--samples", default=None, type=click.IntRange(min=10),
              help="Score a class-stratified subset of this many training samples (default: all).")
@click.option("--tile-to", default=None, type=click.IntRange(min=10),
              help="Repeat the training set to this many samples (e.g. 50000 from the 10,000-image CIFAR-10 subset).")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(min=1),
              help="Interleaved rounds; the median is reported.")
@click.option("--memory/--no-memory", default=True, show_default=True,
              help="Measure peak memory (fresh processes: adds a few seconds each).")
@data_dir_option
@device_option
@json_option
@handle_errors
def bench_scores_command(dataset, model, samples, tile_to, batch_size, rounds, memory, data_dir, device, as_json):
    """Scoring cost of each scorer (MNIST `cnn` by default), in training epochs, against naive and vmap peers."""
    from .bench import bench_scores

    result = bench_scores(data_dir=data_dir, samples=samples, device=device, batch_size=batch_size,
                          dataset=dataset, model=model, tile_to=tile_to, rounds=rounds, memory=memory)
    if as_json:
        print_json(result)
        return
    tiled = f" (tiled from {result['tiled_from']})" if result["tiled_from"] else ""
    click.echo(f"{result['dataset']} {result['model']}, {result['samples']} samples{tiled}, batch {batch_size} on "
               f"{result['device']}: one training epoch {result['train_epoch_seconds']:.2f} s")
    click.echo(f"{'scorer':<16} {'samples/s':>12} {'epochs':>7} {'vs naive':>9} {'vs vmap':>8} {'memory':>7}")
    for name, r in result["scorers"].items():
        def cell(key: str, fmt: str, width: int) -> str:
            return (format(r[key], fmt) if r.get(key) is not None else "-").rjust(width)
        click.echo(f"{name:<16} {cell('samples_per_second', ',.0f', 12)} {cell('epochs_equivalent', '.2f', 7)} "
                   f"{cell('speedup_vs_naive', '.1f', 9)} {cell('speedup_vs_vmap', '.1f', 8)} "
                   f"{cell('peak_memory_vs_train_step', '.2f', 7)}")
    click.echo("epochs: scoring time in training epochs; vs naive/vmap: speedup; memory: peak over a training step")
    memory = (f", peak memory {result['all_scorers_peak_memory_vs_train_step']:.2f}x a training step "
              f"({result['memory_method']})" if "memory_method" in result else "")
    click.echo(f"loss, grad_norm, input_grad_norm and el2n in one pass: "
               f"{result['all_scorers_epochs_equivalent']:.2f} training epochs{memory}")


@bench_group.command("tui")
@click.option("--runs", default=5, show_default=True, type=int, help="Starts to time.")
@click.option("--store", default=".", type=click.Path(file_okay=False), help="Folder whose mlruns/ the TUI opens.")
@click.option("--marker", default=None, help="Text to wait for (default: the runs table's header).")
@json_option
@handle_errors
def bench_tui_command(runs, store, marker, as_json):
    """Time from starting `prunelab tui` to its first frame, in an 80x24 pseudo-terminal."""
    from .bench import TUI_MARKER, bench_tui

    result = bench_tui(runs=runs, store=store, marker=marker or TUI_MARKER)
    if as_json:
        print_json(result)
    else:
        click.echo(f"first frame of `prunelab tui` (s): {', '.join(map(str, result['seconds']))}; "
                   f"median {result['median_seconds']} s, max {result['max_seconds']} s")


# ---------------------------------------------------------------- experiments
def _tracking_uri(ctx: click.Context) -> str | None:
    return ctx.find_root().obj.get("tracking_uri") if ctx.find_root().obj else None


@main.command("run")
@click.argument("config_file", required=False, type=click.Path(dir_okay=False))
@click.option("--preset", default=None, help="Start from a shipped preset (see `prunelab config list`).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. --set sweep.keep_ratios=[0.3,0.5] (repeatable).")
@click.option("--resume", default=None, metavar="RUN_ID", help="Complete only the missing trials of this run.")
@click.option("--detach", is_flag=True, help="Run in its own process session; print the run id and return.")
@click.option("--executor", default="local", show_default=True, help="local or ray.")
@click.option("--ray-address", default=None, help="Ray cluster address (with --executor ray).")
@click.option("--ray-gpus-per-trial", type=float, default=None,
              help="GPUs per trial with --executor ray; fractions share a GPU (default: 1 if the cluster has GPUs).")
@click.option("--ray-cpus-per-trial", type=float, default=None, help="CPUs per trial with --executor ray (default 1).")
@click.option("--ray-max-retries", type=int, default=None,
              help="Times a trial whose Ray worker died is run again (default 2).")
@json_option
@click.pass_context
@handle_errors
def run_command(ctx, config_file, preset, overrides, resume, detach, executor, ray_address, ray_gpus_per_trial,
                ray_cpus_per_trial, ray_max_retries, as_json):
    """Run an experiment from a TOML file or a preset, and log it to MLflow."""
    from . import api

    tracking_uri = _tracking_uri(ctx)
    if resume and (config_file or preset or overrides):
        raise click.UsageError("--resume takes the config stored with the run; drop CONFIG, --preset and --set")
    if config_file and preset:
        raise click.UsageError("give a CONFIG file or --preset, not both")
    config = None if resume else api.load_config(config_file or preset or "quick", list(overrides))
    ray_options = {"address": ray_address, "gpus_per_trial": ray_gpus_per_trial,
                   "cpus_per_trial": ray_cpus_per_trial, "max_retries": ray_max_retries}
    executor_options = {k: v for k, v in ray_options.items() if v is not None}
    if executor_options and executor != "ray":
        raise click.UsageError("the --ray-* options need --executor ray")
    if detach:
        info = api.launch_detached(config, tracking_uri=tracking_uri, resume=resume, executor=executor,
                                   executor_options=executor_options)
        if as_json:
            print_json(info)
        else:
            click.echo(info["run_id"])
        return
    with ProgressBars() as bars:
        result = api.run(config, on_event=bars, tracking_uri=tracking_uri, resume=resume, executor=executor,
                         executor_options=executor_options)
    if as_json:
        print_json({"run_id": result.run_id, "experiment": result.experiment, "status": result.status,
                    "summary": result.summary, "artifacts": result.artifacts, "seconds": round(result.seconds, 2),
                    "tracking_uri": result.tracking_uri, "progress_file": result.progress_file})
    else:
        print_summary(result.summary, title=f"{result.experiment} — run {result.run_id} {result.status}")
        click.echo(f"run {result.run_id} {result.status} in {result.seconds:.0f} s; "
                   f"browse: mlflow ui --backend-store-uri {result.tracking_uri}")
    failed = [t for t in result.trials if t.status == "FAILED"]
    if failed and len(failed) == len(result.trials):
        sys.exit(EXIT_FAILED)


def print_summary(rows: list[dict[str, Any]], title: str = "") -> None:
    """The summary as a rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None)
    if not rows:
        click.echo("no finished trials yet")
        return
    for key in rows[0]:
        table.add_column(key, justify="right" if isinstance(rows[0][key], (int, float)) else "left")
    for row in rows:
        table.add_row(*[_cell(k, v) for k, v in row.items()])
    Console().print(table)


def _cell(key: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2%}" if "accuracy" in key else f"{value:.4g}"
    return str(value)


@main.command("runs")
@click.option("--status", default=None, help="RUNNING, FINISHED, FAILED or KILLED.")
@click.option("--kind", default=None, help="Experiment kind, e.g. prune.")
@json_option
@click.pass_context
@handle_errors
def runs_command(ctx, status, kind, as_json):
    """List experiment runs (newest first); runs whose process died show as KILLED."""
    from . import api

    runs = api.list_runs(tracking_uri=_tracking_uri(ctx), status=status, kind=kind)
    if as_json:
        print_json([r.to_dict() for r in runs])
        return
    rows = [{"run_id": r.run_id, "experiment": r.experiment, "kind": r.kind, "status": r.status,
             "dataset": r.dataset, "model": r.model,
             "best": f"{r.best_accuracy:.2%}" if r.best_accuracy is not None else "-",
             "trials": f"{r.trials_done}/{r.trials}",
             "duration": f"{r.duration:.0f}s" if r.duration is not None else "-"} for r in runs]
    print_summary(rows, title="prunelab runs")


@main.command("show")
@click.argument("run_id")
@click.option("--top", "top", type=int, default=None, metavar="N",
              help="Also list the N highest-scored training samples (image, label, prediction, score).")
@click.option("--method", default="loss", show_default=True, help="With --top: the scorer whose scores rank them.")
@click.option("--epoch", type=int, default=None, help="With --top: the surrogate epoch (default: the last scored).")
@click.option("--lowest", is_flag=True, help="With --top: the lowest-scored samples instead.")
@json_option
@click.pass_context
@handle_errors
def show_command(ctx, run_id, top, method, epoch, lowest, as_json):
    """Print a run's summary table (and an overlap run's matrices)."""
    from . import api

    uri = _tracking_uri(ctx)
    report = api.show(run_id, tracking_uri=uri)
    samples = api.top_samples(run_id, method, epoch, top, lowest, tracking_uri=uri) if top else None
    if as_json:
        if samples is not None:
            report["top"] = [{k: v for k, v in s.items() if k != "image"} for s in samples]
        print_json(report)
        return
    title = f"{report['experiment']} — {report['kind']} run {run_id} {report['status']}"
    if report.get("overlap"):
        print_overlap(report["overlap"], title)
    if report["kind"] != "overlap" or not report.get("overlap"):
        print_summary(report["summary"], title=title)
    if samples is not None:
        print_samples(samples, f"the {len(samples)} {'lowest' if lowest else 'highest'} {method} scores")


def print_overlap(overlap: dict[str, Any], title: str) -> None:
    """The methods x methods matrices of an overlap run as tables."""
    from rich.console import Console
    from rich.table import Table

    console, methods, k = Console(), overlap["methods"], overlap["k"]
    names = {"first": f"repetition rate of the top-{k} sets", "last": f"repetition rate of the bottom-{k} sets",
             "spearman": "Spearman rank correlation"}
    for key, name in names.items():
        table = Table(title=f"{title}\n{name}, surrogate epoch {overlap.get('epoch', '?')}")
        table.add_column("")
        for m in methods:
            table.add_column(m, justify="right")
        for m, row in zip(methods, overlap[key]):
            table.add_row(m, *[(f"{v:.2%}" if key != "spearman" else f"{v:.3f}") if v is not None else "-"
                               for v in row])
        console.print(table)


def ascii_image(image, width: int = 14) -> str:
    """A uint8 CHW image as text, darkest to brightest in ' .:-=+*#%@' (2 rows per line, as cells are tall)."""
    import numpy as np

    gray = np.asarray(image, dtype=np.float32).mean(axis=0)
    h, w = gray.shape
    step = max(1, w // width)
    cells = gray[:h - h % (2 * step), :w - w % step].reshape(h // (2 * step), 2 * step, w // step, step).mean((1, 3))
    ramp = " .:-=+*#%@"
    return "\n".join("".join(ramp[int(v / 256 * len(ramp))] for v in row) for row in cells)


def print_samples(samples: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=True)
    for col in ("rank", "index", "source index", "label", "predicted", "score", "image"):
        table.add_column(col, justify="left" if col == "image" else "right")
    for rank, s in enumerate(samples, 1):
        predicted = "-" if s["predicted"] is None else str(s["predicted"])
        if s["predicted"] is not None and s["predicted"] != s["label"]:
            predicted = f"[red]{predicted}[/red]"
        table.add_row(str(rank), str(s["index"]), str(s["source_index"]), str(s["label"]), predicted,
                      f"{s['score']:.4g}", ascii_image(s["image"]))
    Console().print(table)


@main.command("export")
@click.argument("run_id")
@click.option("--csv", "as_csv", is_flag=True, required=True, help="Export the summary as CSV.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to this file instead of stdout.")
@click.pass_context
@handle_errors
def export_command(ctx, run_id, as_csv, out):
    """Export a run's summary table."""
    from . import api

    text = api.export_csv(run_id, tracking_uri=_tracking_uri(ctx))
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        click.echo(text, nl=False)


@main.group("cache", invoke_without_command=True)
@json_option
@click.pass_context
@handle_errors
def cache_group(ctx, as_json):
    """The surrogate and score cache: what it holds (no subcommand), or `clear` to free space."""
    if ctx.invoked_subcommand is not None:
        return
    from . import api

    info = api.cache_usage(tracking_uri=_tracking_uri(ctx))
    if as_json:
        print_json(info)
        return
    if not info["kinds"]:
        click.echo(f"cache in {info['folder']}: empty")
        return
    rows = [{"kind": k["kind"], "entries": k["entries"], "size": human_bytes(k["bytes"]),
             "last used": time.strftime("%Y-%m-%d %H:%M", time.localtime(k["last_used"])),
             "first used": time.strftime("%Y-%m-%d %H:%M", time.localtime(k["first_used"]))} for k in info["kinds"]]
    print_summary(rows, title=f"cache in {info['folder']}: {info['entries']} entries, {human_bytes(info['bytes'])}")


def human_bytes(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} GB"


def parse_age(text: str) -> float:
    """'7d', '12h', '30m', '90s' or plain seconds, as seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    text = text.strip().lower()
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a duration like 7d, 12h, 30m or 90s") from None
    if seconds < 0:
        raise click.BadParameter(f"{text!r}: a duration cannot be negative")
    return seconds


@cache_group.command("clear")
@click.option("--older-than", default=None, metavar="AGE",
              help="Only entries unused for this long (7d, 12h, 30m, 90s); default: all.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(["surrogate", "scores", "forgetting"]),
              help="Only this kind (repeatable): surrogate checkpoints, score arrays, forgetting counts.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed, remove nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
@handle_errors
def cache_clear_command(ctx, older_than, kinds, dry_run, yes, as_json):
    """Delete cache entries; runs that need them again retrain or rescore (safe while runs go on)."""
    from . import api

    seconds = parse_age(older_than) if older_than else 0.0
    uri = _tracking_uri(ctx)
    if not dry_run and not yes:
        preview = api.clear_cache(seconds, kinds, dry_run=True, tracking_uri=uri)
        if preview["removed"] == 0:
            click.echo("nothing to remove")
            return
        click.confirm(f"remove {preview['removed']} cache entries ({human_bytes(preview['bytes'])}) from "
                      f"{preview['folder']}?", abort=True, err=True)
    result = api.clear_cache(seconds, kinds, dry_run=dry_run, tracking_uri=uri)
    if as_json:
        print_json(result)
    else:
        verb = "would remove" if dry_run else "removed"
        click.echo(f"{verb} {result['removed']} entries, {human_bytes(result['bytes'])}, from {result['folder']}")


@main.group("config")
def config_group() -> None:
    """Presets and config files."""


@config_group.command("list")
def config_list_command() -> None:
    """List the shipped presets."""
    from .config import preset_names

    for name in preset_names():
        click.echo(name)


@config_group.command("show")
@click.argument("name")
@handle_errors
def config_show_command(name):
    """Print a preset (as TOML), to start a config file from."""
    from .config import preset_text

    click.echo(preset_text(name), nl=False)


@config_group.command("check")
@click.argument("config_file")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@handle_errors
def config_check_command(config_file, overrides):
    """Validate a config file (or preset) and print it resolved."""
    from .config import load_config

    click.echo(load_config(config_file, list(overrides)).to_toml(), nl=False)


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
