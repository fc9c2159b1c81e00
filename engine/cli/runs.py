"""`prunelab run`, `runs`, `show`, `export`: experiments, and reading them back as rich tables."""
from __future__ import annotations

import sys
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import names
from ..errors import UserError
from ..preview import CONFIRM_TRIALS
from .common import (
    EXIT_FAILED,
    ProgressBars,
    check_out_path,
    handle_errors,
    json_option,
    main,
    one_seed,
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
@click.option("--dry-run", is_flag=True, help="Print what the run would do (trials, selections, surrogates, an "
              "estimated time and what it rests on) and exit, creating no run.")
@click.option("--yes", "-y", is_flag=True, help=f"Start without asking, also above {CONFIRM_TRIALS} trials (needed "
              "then when stdin is not a terminal).")
@json_option
@click.pass_context
@handle_errors
def run_command(ctx, config_file, preset, overrides, resume, retry_failed, allow_data_change, detach, executor,
                ray_address, ray_gpus_per_trial, ray_cpus_per_trial, ray_max_retries, dry_run, yes, as_json):
    """Run an experiment from a TOML file or a preset, and log it to MLflow."""
    from .. import api

    tracking_uri = tracking_uri_of(ctx)
    check_run_options(bool(config_file or preset or overrides), bool(config_file and preset), resume, retry_failed,
                      allow_data_change)
    if dry_run and resume is not None:
        raise click.UsageError("--dry-run previews a new run; drop --resume")
    config = None if resume is not None else api.load_config(config_file or preset or "quick", list(overrides))
    executor_options = ray_options(executor, address=ray_address, gpus_per_trial=ray_gpus_per_trial,
                                   cpus_per_trial=ray_cpus_per_trial, max_retries=ray_max_retries)
    if dry_run:
        print_preview(api.preview(config, tracking_uri), as_json)
        return
    if config is not None and not yes:
        confirm_size(config, tracking_uri)
    if detach:
        info = api.launch_detached(config, tracking_uri=tracking_uri, resume=resume, executor=executor,
                                   executor_options=executor_options, retry_failed=retry_failed,
                                   allow_data_change=allow_data_change)
        if as_json:
            print_json(info)
        else:
            click.echo(info["run_id"])  # stdout holds the id alone, for `RID=$(prunelab run --detach ...)`
            click.echo(f"started in the background (pid {info['pid']}, log {info['log_file']}); follow it with "
                       "`prunelab` (the TUI, `m`) or `prunelab runs`", err=True)
        return
    with ProgressBars() as bars:
        result = api.run(config, on_event=bars, tracking_uri=tracking_uri, resume=resume, executor=executor,
                         executor_options=executor_options, retry_failed=retry_failed,
                         allow_data_change=allow_data_change)
    print_run(result, as_json)
    exit_if_every_trial_failed(result)


def exit_if_every_trial_failed(result) -> None:
    """A run whose every trial failed says so on stderr (the first trial's error) and exits 1."""
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


def print_preview(preview: Any, as_json: bool) -> None:
    """`run --dry-run`: the preview as lines (its headline first), or as one JSON object."""
    if as_json:
        print_json(preview.to_dict())
        return
    click.echo(f"dry run, nothing started: {preview.headline()}")
    for line in preview.lines():
        click.echo(f"  {line}")


def interactive() -> bool:
    """Whether there is a terminal to ask on (stdin)."""
    return sys.stdin.isatty()


def confirm_size(config: Any, tracking_uri: str | None) -> None:
    """Above CONFIRM_TRIALS trials, ask on a terminal (with the preview); refuse in one line when stdin is not one."""
    from .. import api

    count = api.trial_count(config)
    if count <= CONFIRM_TRIALS:
        return
    if not interactive():
        raise UserError(f"this {config.kind} run has {count} trials (more than {CONFIRM_TRIALS}) and stdin is not a "
                        "terminal to ask on; pass --yes to start it, or --dry-run to see what it would do")
    preview = api.preview(config, tracking_uri)
    for line in preview.lines():
        click.echo(line, err=True)
    if not click.confirm(f"Start {preview.headline()}?", default=False, err=True):
        raise UserError("not started (answered no); --dry-run previews a run, --yes starts one without asking")


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
@click.option("--sample", "sample", type=click.IntRange(min=0), default=None, metavar="N",
              help="Also inspect training sample N: its scores with percentiles, nearest neighbours in embedding "
                   "space, and the trials that kept it.")
@json_option
@click.pass_context
@handle_errors
def show_command(ctx, run_id, top, method, epoch, lowest, sample, as_json):
    """Print a run's summary table (and an overlap run's matrices)."""
    from .. import api

    uri = tracking_uri_of(ctx)
    report = api.show(run_id, tracking_uri=uri)
    samples = api.top_samples(run_id, method, epoch, top, lowest, tracking_uri=uri) if top else None
    inspected = api.inspect(report["run_id"], sample, tracking_uri=uri) if sample is not None else None
    if as_json:
        if samples is not None:
            report["top"] = [{k: v for k, v in s.items() if k != "image"} for s in samples]
        if inspected is not None:
            report["sample"] = inspected.to_dict()
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
    if inspected is not None:
        print_sample(inspected)


def print_benchmark(rows: list[dict[str, Any]], title: str) -> None:
    """A benchmark run as a method x keep ratio table: accuracy, difference from random (* p < 0.05), rank;
    each ratio's winner bold with a star; methods by average rank, then Nemenyi's critical difference."""
    from ..analysis import average_ranks, critical_difference, crossover

    ranked = [r for r in rows if "rank" in r]
    ratios = sorted({r["ratio"] for r in ranked})
    cell = {(r["method"], r["ratio"]): r for r in ranked}
    ranks = average_ranks(ranked)
    table = Table(title=title, caption="accuracy (mean ± std over seeds; one seed: no ±), Δ random (* p < 0.05, "
                                       "paired t-test), #rank; ★ best at that keep ratio")
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
            spread = "" if one_seed(r) else f" ±{100 * r['std_accuracy']:.1f}"
            text = f"{r['mean_accuracy']:.2%}{spread}\n"
            if method != names.RANDOM:
                text += f"Δ {r['diff']:+.2%}{'*' if r['significant'] else ''} "
            text += f"#{r['rank']:g}"
            cells.append(f"[bold green]★ {text}[/]" if r["winner"] else text)
        table.add_row(method, *cells, f"{avg:.2f}")
    console = Console()
    console.print(table)
    full = [r for r in rows if r["method"] == names.FULL]
    if full:
        spread = "" if one_seed(full[0]) else f" ± {full[0]['std_accuracy']:.2%}"
        console.print(f"full data: {full[0]['mean_accuracy']:.2%}{spread}")
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


def class_text(number: int | None, name: str | None) -> str:
    """A label as its class name with its number ("ship (8)"); the number alone when the classes are numbers."""
    if number is None:
        return "-"
    return str(number) if name in (None, str(number)) else f"{name} ({number})"


def print_samples(samples: list[dict[str, Any]], title: str) -> None:
    """The samples as a table: rank, indices, label and prediction by class name (a wrong one in red), score, the
    image in characters, and for folder data its file, relative to the folder the caption names."""
    import os

    paths = [s.get("path") for s in samples]
    root = os.path.commonpath([os.path.dirname(os.path.dirname(p)) for p in paths if p]) if any(paths) else None
    table = Table(title=title, show_lines=True, caption=f"files under {root}" if root else None)
    for col in ("#", "index", "source", "label", "pred", "score", "image", *(("file",) if root else ())):
        table.add_column(col, justify="left" if col in ("image", "file", "label", "pred") else "right",
                         no_wrap=col == "image", min_width=14 if col == "image" else None, overflow="fold")
    for rank, s in enumerate(samples, 1):
        predicted = escape(class_text(s["predicted"], s.get("predicted_class")))
        if s["predicted"] is not None and s["predicted"] != s["label"]:
            predicted = f"[red]{predicted}[/red]"
        file = escape(os.path.relpath(s["path"], root)) if root and s.get("path") else "-"
        table.add_row(str(rank), str(s["index"]), str(s["source_index"]), escape(class_text(s["label"], s.get("class"))),
                      predicted, f"{s['score']:.4g}", ascii_image(s["image"]), *((file,) if root else ()))
    Console().print(table)


def print_sample(report: Any) -> None:
    """One sample (engine.inspect's SampleReport): image and labels, scores with percentiles, neighbours, trials."""
    console = Console()
    grid = Table.grid(padding=(0, 2))
    grid.add_row(ascii_image(report.image, width=28), "\n".join(sample_facts(report)))
    console.print(grid)
    scores = Table(title="scores (percentile: share of the run's samples scored lower)")
    for col in ("score", "epoch", "value", "percentile"):
        scores.add_column(col, justify="left" if col == "score" else "right")
    for r in report.scores:
        scores.add_row(r.method, "-" if r.epoch is None else str(r.epoch), f"{r.value:.4g}", f"{r.percentile:.1f}")
    console.print(scores if report.scores else "no per-sample scores in this run")
    if report.neighbours:
        near = Table(title=f"nearest neighbours (cosine, surrogate embeddings at epoch {report.neighbour_epoch})")
        for col in ("index", "label", "cosine"):
            near.add_column(col, justify="right")
        for n in report.neighbours:
            shown = report.class_name(n.label)
            near.add_row(str(n.index), f"[red]{shown}[/red]" if n.label != report.label else shown,
                         f"{n.similarity:.3f}")
        console.print(near)
    console.print(trial_table(report) if report.trials else "no trials")


def sample_facts(report: Any) -> list[str]:
    """The lines beside a sample's image: where it is, its labels, its neighbours' verdict, the trials."""
    where = f"sample #{report.index}"
    if report.source_index != report.index:
        where += f" (source #{report.source_index})"
    label = f"label {report.class_name(report.label)}"
    if report.clean_label is not None:
        label += f", flipped from {report.class_name(report.clean_label)}"
    predicted = f"predicted {report.class_name(report.predicted)}"
    if report.prediction_epoch is not None:
        predicted += f" at surrogate epoch {report.prediction_epoch}"
    lines = [where, label, predicted]
    if report.neighbours:
        verdict = f"{report.disagreeing} of its {len(report.neighbours)} nearest neighbours carry another label"
        if report.disagrees:
            verdict += f": most are {report.class_name(report.majority)}, so its label is worth a second look"
        lines.append(verdict)
    kept, selecting = report.kept_in()
    return [*lines, f"kept by {kept} of the {selecting} trials that selected"]


def trial_table(report: Any) -> Table:
    table = Table(title="trials")
    for col in ("trial", "status", "accuracy", "this sample"):
        table.add_column(col, justify="left" if col == "trial" else "right")
    for m in report.trials:
        if m.kept is None:
            what = "all (full data)" if m.trial.method == names.FULL else "-"
        else:
            what = "kept" if m.kept else "pruned"
        what += f" (weight {m.weight:.3g})" if m.weight is not None else ""
        accuracy = "-" if m.trial.accuracy is None else f"{m.trial.accuracy:.2%}"
        table.add_row(m.trial.label, m.trial.status, accuracy, what)
    return table


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
