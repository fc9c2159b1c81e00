"""`prunelab run`, `runs`, `show`, `export`: experiments, and reading them back as rich tables."""
from __future__ import annotations

import sys
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from .. import names
from .common import (
    EXIT_FAILED,
    ProgressBars,
    check_out_path,
    handle_errors,
    json_option,
    main,
    print_json,
    print_summary,
    tracking_uri_of,
)


# ---------------------------------------------------------------- experiments
@main.command("run")
@click.argument("config_file", required=False, type=click.Path(dir_okay=False))
@click.option("--preset", default=None, help="Start from a shipped preset (see `prunelab config list`).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. --set sweep.keep_ratios=[0.3,0.5] (repeatable).")
@click.option("--resume", default=None, metavar="RUN_ID", help="Complete only the missing trials of this run.")
@click.option("--retry-failed", is_flag=True, help="With --resume: run the FAILED trials again too.")
@click.option("--allow-data-change", is_flag=True,
              help="With --resume: go on although the data set changed since the run began (the run is tagged).")
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
def run_command(ctx, config_file, preset, overrides, resume, retry_failed, allow_data_change, detach, executor,
                ray_address, ray_gpus_per_trial, ray_cpus_per_trial, ray_max_retries, as_json):
    """Run an experiment from a TOML file or a preset, and log it to MLflow."""
    from .. import api

    tracking_uri = tracking_uri_of(ctx)
    check_run_options(bool(config_file or preset or overrides), bool(config_file and preset), resume, retry_failed,
                      allow_data_change)
    config = None if resume is not None else api.load_config(config_file or preset or "quick", list(overrides))
    executor_options = ray_options(executor, address=ray_address, gpus_per_trial=ray_gpus_per_trial,
                                   cpus_per_trial=ray_cpus_per_trial, max_retries=ray_max_retries)
    if detach:
        info = api.launch_detached(config, tracking_uri=tracking_uri, resume=resume, executor=executor,
                                   executor_options=executor_options, retry_failed=retry_failed,
                                   allow_data_change=allow_data_change)
        if as_json:
            print_json(info)
        else:
            click.echo(info["run_id"])
        return
    with ProgressBars() as bars:
        result = api.run(config, on_event=bars, tracking_uri=tracking_uri, resume=resume, executor=executor,
                         executor_options=executor_options, retry_failed=retry_failed,
                         allow_data_change=allow_data_change)
    print_run(result, as_json)
    failed = [t for t in result.trials if t.status == names.FAILED]
    if failed and len(failed) == len(result.trials):
        first = next((t.message for t in failed if t.message), "")
        why = f" (the first: {first.splitlines()[0][:300]})" if first else ""
        click.echo(f"prunelab: error: every trial of run {result.run_id} failed, {len(failed)} of {len(failed)}{why}; "
                   f"see `prunelab show {result.run_id[:8]}`", err=True)
        sys.exit(EXIT_FAILED)


def check_run_options(has_config: bool, config_and_preset: bool, resume: str | None, retry_failed: bool,
                      allow_data_change: bool = False) -> None:
    """The options of `run` that exclude each other, checked before anything loads."""
    if resume is not None and has_config:
        raise click.UsageError("--resume takes the config stored with the run; drop CONFIG, --preset and --set")
    if config_and_preset:
        raise click.UsageError("give a CONFIG file or --preset, not both")
    for flag, given in (("--retry-failed", retry_failed), ("--allow-data-change", allow_data_change)):
        if given and resume is None:
            raise click.UsageError(f"{flag} needs --resume RUN_ID")


def ray_options(executor: str, **given: Any) -> dict[str, Any]:
    """The --ray-* options that were given, as the Ray executor's keywords; they need `--executor ray`."""
    options = {k: v for k, v in given.items() if v is not None}
    if options and executor != "ray":
        raise click.UsageError("the --ray-* options need --executor ray")
    return options


def print_run(result: Any, as_json: bool) -> None:
    """A finished run: one JSON object, or its summary (a benchmark's as a leaderboard) and where to browse it."""
    if as_json:
        print_json({"run_id": result.run_id, "experiment": result.experiment, "status": result.status,
                    "summary": result.summary, "artifacts": result.artifacts, "seconds": round(result.seconds, 2),
                    "tracking_uri": result.tracking_uri, "progress_file": result.progress_file})
        return
    title = f"{result.experiment} — run {result.run_id} {result.status}"
    if any("winner" in row for row in result.summary):  # a benchmark's rows (also when resumed)
        print_benchmark(result.summary, title)
    else:
        print_summary(result.summary, title=title)
    click.echo(f"run {result.run_id} {result.status} in {result.seconds:.0f} s; "
               f"browse: mlflow ui --backend-store-uri {result.tracking_uri}")


@main.command("runs")
@click.option("--status", default=None, type=click.Choice(names.STATUSES, case_sensitive=False),
              help="Only runs with this status.")
@click.option("--kind", default=None, help="Experiment kind, e.g. prune.")
@json_option
@click.pass_context
@handle_errors
def runs_command(ctx, status, kind, as_json):
    """List experiment runs (newest first); runs whose process died show as KILLED."""
    from .. import api

    runs = api.list_runs(tracking_uri=tracking_uri_of(ctx), status=status, kind=kind)
    if as_json:
        print_json([r.to_dict() for r in runs])
        return
    if not runs:
        click.echo(f"no {status.upper() + ' ' if status else ''}{kind + ' ' if kind else ''}runs yet"
                   if status or kind else "no runs yet; start one with `prunelab run`")
        return
    ids = short_ids([r.run_id for r in runs])
    rows = [{"run_id": ids[r.run_id], "experiment": r.experiment, "kind": r.kind, "status": r.status,
             "dataset": r.dataset, "model": r.model,
             "full data": _pct(r.full_accuracy), "best pruned": _pct(r.best_pruned),
             "trials": f"{r.trials_done}/{r.trials}",
             "time": f"{r.duration:.0f}s" if r.duration is not None else "-"} for r in runs]
    if Console().width < 100:  # as in the TUI, some columns give way so that ids and accuracies stay whole
        rows = [{k: v for k, v in row.items() if k not in ("kind", "dataset")} for row in rows]
    print_summary(rows, title="prunelab runs")


def _pct(value: float | None) -> str:
    return f"{value:.2%}" if value is not None else "-"


def short_ids(run_ids: list[str], length: int = 8) -> dict[str, str]:
    """Each id cut to the shortest prefix (at least `length`) that no other listed id shares: `show` takes it."""
    out = {}
    for run_id in run_ids:
        n = length
        while n < len(run_id) and any(o != run_id and o.startswith(run_id[:n]) for o in run_ids):
            n += 1
        out[run_id] = run_id[:n]
    return out


@main.command("show")
@click.argument("run_id")
@click.option("--top", "top", type=click.IntRange(min=1), default=None, metavar="N",
              help="Also list the N highest-scored training samples (image, label, prediction, score).")
@click.option("--method", default="loss", show_default=True, help="With --top: the scorer whose scores rank them.")
@click.option("--epoch", type=int, default=None, help="With --top: the surrogate epoch (default: the last scored).")
@click.option("--lowest", is_flag=True, help="With --top: the lowest-scored samples instead.")
@json_option
@click.pass_context
@handle_errors
def show_command(ctx, run_id, top, method, epoch, lowest, as_json):
    """Print a run's summary table (and an overlap run's matrices)."""
    from .. import api

    uri = tracking_uri_of(ctx)
    report = api.show(run_id, tracking_uri=uri)
    samples = api.top_samples(run_id, method, epoch, top, lowest, tracking_uri=uri) if top else None
    if as_json:
        if samples is not None:
            report["top"] = [{k: v for k, v in s.items() if k != "image"} for s in samples]
        print_json(report)
        return
    title = f"{report['experiment']} — {report['kind']} run {report['run_id']} {report['status']}"
    if report.get("overlap"):
        print_overlap(report["overlap"], title)
    if report["kind"] == "benchmark" and report["summary"]:
        print_benchmark(report["summary"], title)
    elif report["kind"] != "overlap" or not report.get("overlap"):
        print_summary(report["summary"], title=title)
    if samples is not None:
        print_samples(samples, f"the {len(samples)} {'lowest' if lowest else 'highest'} {method} scores")


def print_benchmark(rows: list[dict[str, Any]], title: str) -> None:
    """A benchmark run as a method x keep ratio table: accuracy, difference from random (* p < 0.05), rank;
    each ratio's winner bold with a star; methods by average rank, then Nemenyi's critical difference."""
    from ..analysis import average_ranks, critical_difference, crossover

    ranked = [r for r in rows if "rank" in r]
    ratios = sorted({r["ratio"] for r in ranked})
    cell = {(r["method"], r["ratio"]): r for r in ranked}
    ranks = average_ranks(ranked)
    table = Table(title=title, caption="accuracy (mean ± std over seeds), Δ random (* p < 0.05, paired t-test), "
                                       "#rank; ★ best at that keep ratio")
    table.add_column("method")
    for ratio in ratios:
        table.add_column(f"keep {ratio:g}", justify="right")
    table.add_column("avg rank", justify="right")
    for method, avg in ranks.items():
        cells = []
        for ratio in ratios:
            r = cell.get((method, ratio))
            if r is None:
                cells.append("-")
                continue
            text = f"{r['mean_accuracy']:.2%} ±{100 * r['std_accuracy']:.1f}\n"
            if method != names.RANDOM:
                text += f"Δ {r['diff']:+.2%}{'*' if r['significant'] else ''} "
            text += f"#{r['rank']:g}"
            cells.append(f"[bold green]★ {text}[/]" if r["winner"] else text)
        table.add_row(method, *cells, f"{avg:.2f}")
    console = Console()
    console.print(table)
    full = [r for r in rows if r["method"] == names.FULL]
    if full:
        console.print(f"full data: {full[0]['mean_accuracy']:.2%} ± {full[0]['std_accuracy']:.2%}")
    console.print(f"critical difference of average ranks (Nemenyi, α = 0.05): "
                  f"{critical_difference(len(ranks), len(ratios)):.2f}")
    for method in ranks:
        if method.endswith("/hardest"):
            ratio = crossover(ranked, method)
            console.print(f"{method} stops beating random at keep ratio "
                          + (f"≈ {ratio:.2f}" if ratio == ratio else "- (no crossover)"))


def print_overlap(overlap: dict[str, Any], title: str) -> None:
    """The methods x methods matrices of an overlap run as tables."""

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

    gray = np.asarray(image, dtype=np.float32).mean(axis=0)
    h, w = gray.shape
    step = max(1, w // width)
    cells = gray[:h - h % (2 * step), :w - w % step].reshape(h // (2 * step), 2 * step, w // step, step).mean((1, 3))
    ramp = " .:-=+*#%@"
    return "\n".join("".join(ramp[int(v / 256 * len(ramp))] for v in row) for row in cells)


def print_samples(samples: list[dict[str, Any]], title: str) -> None:

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
@click.option("--csv", "as_csv", is_flag=True, default=True, help="CSV (the only format, and the default).")
@click.option("--trials", is_flag=True, help="One row per trial instead of the summary (mean ± std over seeds).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to this file instead of stdout.")
@click.pass_context
@handle_errors
def export_command(ctx, run_id, as_csv, trials, out):
    """Export a run's summary table (or its trials) as CSV."""
    from .. import api

    check_out_path(out)
    text = api.export_csv(run_id, tracking_uri=tracking_uri_of(ctx), trials=trials)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        click.echo(text, nl=False)
