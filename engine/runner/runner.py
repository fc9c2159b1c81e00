"""The runner: owns the parent MLflow run, the progress file, resume, signals and the run's status.

An experiment kind only plans trials and says what each does; the runner
logs its summary rows (summary.csv, summary.json) and headline metrics, for
every kind alike. Ctrl-C or SIGTERM ends the run KILLED.
"""
from __future__ import annotations

import csv
import io
import math
import os
import signal
import threading
import time
import tomllib
from typing import Any

from .. import names
from ..config import Config, config_from_dict
from ..errors import UserError
from ..kinds import KINDS, used_config
from ..store.events import EventCallback, RunStarted, RunStatus, fan_out
from ..store.process import process_start
from ..store.progress import JsonLinesSink, fold, read_events
from ..store.runlock import RunLock
from ..store.runs import records_from_children
from ..store.tracking import Tracker, tracker
from .context import RunContext
from .executors import LocalExecutor
from .trials import RunResult


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def summary_to_csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def log_summary(ctx: RunContext, rows: list[dict[str, Any]]) -> None:
    """summary.csv and summary.json on the parent run, whatever the kind."""
    ctx.log_text(summary_to_csv(rows), names.SUMMARY_CSV)
    ctx.log_json(rows, names.SUMMARY_JSON)


def log_headline_metrics(track: Tracker, parent: str, rows: list[dict[str, Any]]) -> None:
    """best_test_accuracy, full_data_accuracy and best_pruned_accuracy (the best row that is not full data) on the
    parent, for run lists and MLflow's table: what pruning kept beside what all the data gives."""
    scored = [r for r in rows if isinstance(r.get("mean_accuracy"), float) and not math.isnan(r["mean_accuracy"])]
    accs = [r["mean_accuracy"] for r in scored]
    pruned = [r["mean_accuracy"] for r in scored if r.get("method") not in (None, names.FULL)]
    full = [r["mean_accuracy"] for r in rows if r.get("method") == names.FULL]
    metrics = {}
    if accs:
        metrics["best_test_accuracy"] = max(accs)
    if pruned:
        metrics[names.BEST_PRUNED] = max(pruned)
    if full:
        metrics[names.FULL_ACCURACY] = full[0]
    track.log_metrics(parent, metrics)


def parent_tags(config: Config) -> dict[str, Any]:
    return {names.ROLE: names.PARENT_ROLE, names.KIND: config.kind, names.DATASET: config.data.dataset,
            names.MODEL: config.model, names.CONFIG_NAME: config.name,
            names.NOTE: config.description or f"prunelab {config.kind} experiment"}


def parent_name(config: Config) -> str:
    """`<kind> <dataset> <model>`, and for a sweep what tells two runs of one config apart: methods @ keep ratios."""
    name = f"{config.kind} {config.data.dataset} {config.model}"
    if KINDS[config.kind].sections is not None and "sweep" in KINDS[config.kind].sections and config.kind != "study":
        sweep = config.sweep
        name += f" · {','.join(sweep.methods)} @ {','.join(f'{r:g}' for r in sweep.keep_ratios)}"
    return name


def create_parent_run(config: Config, tracking_uri: str | None = None) -> str:
    """Create the parent run with its config and params, so a detached process can pick it up."""
    from ..device import resolve_device

    resolve_device(config.device)  # device = "cuda" on a machine without CUDA: one line, before any run exists
    track = tracker(tracking_uri, os.getcwd())
    parent = track.start_run(config.name, parent_name(config), parent_tags(config))
    track.log_text(parent, config.to_toml(), names.CONFIG_TOML)
    track.log_params(parent, flatten(used_config(config)))  # only the sections its kind reads
    return parent


def load_run_config(run_id: str, tracking_uri: str | None = None) -> Config:
    track = tracker(tracking_uri, os.getcwd())
    run = track.get_run(run_id)
    if run.data.tags.get(names.ROLE) != names.PARENT_ROLE:
        raise UserError(f"run {run_id} is not a prunelab experiment (parent) run; pass the parent's id")
    text = track.load_text(run_id, names.CONFIG_TOML)
    if text is None:
        raise UserError(f"run {run_id} has no config.toml artifact, so it cannot be resumed")
    return config_from_dict(tomllib.loads(text), f"run {run_id} {names.CONFIG_TOML}")


def ran_before(progress_file) -> bool:
    """Whether a runner already worked on this run: its progress file holds a status line.

    A detached launch writes only the RunStarted line before its process starts, so
    its first `--resume` is a start, not a resume.
    """
    return progress_file.exists() and any(isinstance(e, RunStatus) for e in read_events(progress_file))


def check_resumable(track: Tracker, run_id: str) -> None:
    """A run whose recorded process still lives (and is still that process) is not resumed under it."""
    progress_file = track.store.progress_file(run_id)
    if not progress_file.exists():
        return
    progress = fold(read_events(progress_file))
    if (progress.status == names.RUNNING and progress.pid and progress.pid != os.getpid()
            and progress.alive is True):
        raise UserError(f"run {run_id} is still running (pid {progress.pid}); cancel it first")


def run_experiment(config: Config | None, tracking_uri: str | None = None, on_event: EventCallback | None = None,
                   resume: str | None = None, executor=None, retry_failed: bool = False) -> RunResult:
    """Run (or resume) an experiment: the parent run, its trials, summary and figures.

    A resume runs the trials that have no finished child; with `retry_failed`, the
    FAILED ones too (their failed children stay, for the record).

    One process at a time works on a run (RunLock); a resume of a run that is
    still running, or being resumed, fails before it touches the run. Ctrl-C ends
    the run KILLED and re-raises KeyboardInterrupt; an unexpected error ends it
    FAILED and re-raises.
    """
    track = tracker(tracking_uri, os.getcwd())
    track.require_writable()  # a read-only store: one line naming its folder, before any lock or progress file
    if resume is not None:
        if not resume.strip():
            raise UserError("--resume: the run id is empty; pass a run id from `prunelab runs`")
        resume = track.resolve(resume)
        track.get_run(resume)  # not found: one line, before any lock file is made
        with RunLock(track.store.progress_file(resume), resume):
            check_resumable(track, resume)
            return _run_locked(track, None, tracking_uri, on_event, resume, executor, retry_failed=retry_failed)
    parent = create_parent_run(config, tracking_uri)
    with RunLock(track.store.progress_file(parent), parent):
        return _run_locked(track, config, tracking_uri, on_event, None, executor, parent)


def _run_locked(track: Tracker, config: Config | None, tracking_uri: str | None, on_event: EventCallback | None,
                resume: str | None, executor, parent: str = "", retry_failed: bool = False) -> RunResult:
    start = time.time()
    executor = executor or LocalExecutor()
    if resume:
        parent = resume
        config = load_run_config(resume, tracking_uri)
        done = records_from_children(track, parent)
        if retry_failed:
            done = {key: record for key, record in done.items() if record.status != names.FAILED}
        track.set_status(parent, names.RUNNING)
        active_before = track.get_run(parent).data.metrics.get(names.ACTIVE_SECONDS, 0.0)
    else:
        done, active_before = {}, 0.0
    kind = KINDS.check(config.kind)
    progress = track.store.progress_file(parent)
    resumed = bool(resume) and ran_before(progress)
    sink = JsonLinesSink(progress)
    events = fan_out(sink, on_event, _raise_if_cancelled)
    planned = kind.count_trials(config)
    track.log_metrics(parent, {"trials": planned})
    events(RunStarted(run_id=parent, experiment=config.name, kind=config.kind, trials=planned,
                      tracking_uri=track.store.uri, pid_start=process_start(os.getpid())))
    events(RunStatus(status=names.RUNNING, run_id=parent, message="resumed" if resumed else "started"))
    previous_sigterm = _sigterm_as_interrupt()
    try:
        ctx = RunContext(config, track, parent, events, executor, done)
        summary = kind.execute(ctx)
        log_summary(ctx, summary)
        records = ctx.records
        failed = [r for r in records if r.status == names.FAILED]
        message = f"{len(failed)} of {len(records)} trials failed" if failed else ""
        log_headline_metrics(track, parent, summary)
        _log_active(track, parent, active_before, start)
        track.end_run(parent, names.FINISHED)
        events(RunStatus(status=names.FINISHED, run_id=parent, message=message))
        return RunResult(parent, config.name, names.FINISHED, summary, ctx.artifacts, records, track.store.uri,
                         str(progress), time.time() - start)
    except KeyboardInterrupt:
        _CANCEL.clear()
        _log_active(track, parent, active_before, start)
        track.end_run(parent, names.KILLED)
        events(RunStatus(status=names.KILLED, run_id=parent, message="interrupted"))
        raise
    except BaseException as exc:
        track.set_tags(parent, {names.ERROR: f"{type(exc).__name__}: {exc}"[:5000]})
        _log_active(track, parent, active_before, start)
        track.end_run(parent, names.FAILED)
        events(RunStatus(status=names.FAILED, run_id=parent, message=f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        _restore_sigterm(previous_sigterm)
        sink.close()


_CANCEL = threading.Event()  # set by SIGTERM until the run has handled the interrupt


def _raise_if_cancelled(event) -> None:
    """Every event (one per batch at least) re-raises a cancel whose KeyboardInterrupt was swallowed.

    The signal handler's exception is raised wherever the main thread happens to be;
    inside a weakref callback or a __del__ (SQLAlchemy has both), Python prints
    "Exception ignored" and carries on, and the run would never end.
    """
    if _CANCEL.is_set():
        _CANCEL.clear()
        raise KeyboardInterrupt


def _log_active(track: Tracker, parent: str, before: float, start: float) -> None:
    """The run's active time so far: earlier sessions' plus this one's, so a resumed run's duration leaves out
    the hours it lay dead (MLflow's end - start counts them)."""
    track.log_metrics(parent, {names.ACTIVE_SECONDS: before + time.time() - start})


def _sigterm_as_interrupt() -> dict | None:
    """SIGTERM (a cancel from the TUI) ends the run like Ctrl-C: KILLED, with its state recorded.

    Ctrl-C gets the same handler (unless the caller installed its own), so that its
    interrupt, too, is re-raised at the next event if a __del__ swallowed it."""
    def handler(signum, frame):
        _CANCEL.set()
        raise KeyboardInterrupt

    try:
        previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, handler)}
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
        return previous
    except ValueError:  # not the main thread: leave signals alone
        return None


def _restore_sigterm(previous: dict | None) -> None:
    _CANCEL.clear()
    for signum, handler in (previous or {}).items():
        if handler is not None:  # None: installed from C, nothing Python can put back
            signal.signal(signum, handler)
