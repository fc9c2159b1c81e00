"""What every experiment kind shares: trials, the run context, and the runner.

The runner owns the parent MLflow run, the progress file, resume and the run's
status; an experiment kind only plans trials and says what each one does.
Trials are picklable jobs (`TrialJob`) so an executor can run them anywhere:
each job creates, logs and ends its own child run.
"""
from __future__ import annotations

import math
import os
import signal
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from ..config import Config, config_from_dict
from ..errors import PrunelabError, TrainingDiverged
from ..events import (EventCallback, JsonLinesSink, LogLine, RunStarted, RunStatus, StageStarted, TrialFinished,
                      emit, fan_out)
from ..tracking import KIND, ROLE, TRIAL_KEY, Tracker, tracker

FULL = "full"  # the method name of the full-data reference trials


@dataclass(frozen=True)
class Trial:
    """One cell of the sweep grid."""

    method: str
    strategy: str
    ratio: float
    seed: int
    epoch: int

    @property
    def key(self) -> str:
        return f"method={self.method}|strategy={self.strategy}|ratio={self.ratio:g}|seed={self.seed}|epoch={self.epoch}"

    @property
    def name(self) -> str:
        if self.method == FULL:
            return f"full-data / seed {self.seed}"
        return f"{self.method} / {self.strategy} / keep {self.ratio:g} / seed {self.seed} / e{self.epoch}"

    def tags(self) -> dict[str, Any]:
        return {"method": self.method, "strategy": self.strategy, "ratio": f"{self.ratio:g}",
                "seed": self.seed, "epoch": self.epoch}


@dataclass
class TrialRecord:
    """A trial's outcome, as a child run holds it."""

    key: str
    tags: dict[str, Any]
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    child_run_id: str = ""
    message: str = ""


@dataclass
class TrialJob:
    """Everything a worker needs to run one trial and log its child run (picklable)."""

    config: dict[str, Any]
    trial: Trial
    index: int
    total: int
    kept: np.ndarray | None  # sorted kept indices, None = all
    tracking_uri: str
    workdir: str
    parent_id: str
    experiment: str
    task: str = "retrain"  # the TRIAL_TASKS entry that trains it
    name: str = ""  # the child run's name; default: the trial's


# What a trial does, by name, so that a job names it and any process can run it:
# task(job, config, tracker, child_run_id, on_event) -> the trial's metrics. It logs
# what is its own to the child run; execute_trial does the rest (status, errors, events).
TrialTask = Callable[[TrialJob, Config, Tracker, str, "EventCallback | None"], dict[str, float]]
TRIAL_TASKS: dict[str, TrialTask] = {}


def register_trial_task(name: str, task: TrialTask) -> TrialTask:
    TRIAL_TASKS[name] = task
    return task


@dataclass
class RunResult:
    """What `engine.run` returns."""

    run_id: str
    experiment: str
    status: str
    summary: list[dict[str, Any]]
    artifacts: list[str]
    trials: list[TrialRecord]
    tracking_uri: str
    progress_file: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["trials"] = [asdict(t) for t in self.trials]
        return out


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def retrain_budget(config: Config, n_full: int):
    """The retraining config: same epochs (default) or the same optimizer steps as on the full data."""
    if config.sweep.budget == "steps":
        steps = config.train.epochs * max(1, math.ceil(n_full / config.train.batch_size))
        return config.train.model_copy(update={"steps": steps})
    return config.train


def trial_dataset(config: Config):
    """The run's data set, loaded (once per process) where the trial runs."""
    from ..data import load_dataset
    from ..device import resolve_device

    return load_dataset(config.data.dataset, config.data.data_dir, resolve_device(config.device),
                        config.data.train_size, config.data.test_size)


def retrain(job: TrialJob, config: Config, track: Tracker, child: str,
            on_event: EventCallback | None) -> dict[str, float]:
    """The pruning trial: retrain from scratch on the kept subset and evaluate."""
    from ..train import train

    trial = job.trial
    ds = trial_dataset(config)
    cfg = retrain_budget(config, len(ds))
    kept = job.kept if job.kept is not None else np.arange(len(ds))
    track.log_dataset_input(child, ds, kept=len(kept))
    track.log_params(child, {**trial.tags(), "kept": len(kept), "train.steps": cfg.steps, "train.epochs": cfg.epochs})
    result = train(config.model, ds, cfg, seed=trial.seed, indices=kept, on_event=on_event, trial=job.index)
    track.log_history(child, result.history)
    track.log_metrics(child, {"final_test_accuracy": result.test_accuracy, "train_seconds": result.train_seconds},
                      step=result.epochs)
    if trial.method != FULL:
        track.log_numpy(child, kept.astype(np.int64), "selection/kept_indices.npy")
    return {"test_accuracy": result.test_accuracy, "test_loss": result.test_loss,
            "train_seconds": result.train_seconds, "kept": float(len(kept))}


register_trial_task("retrain", retrain)


def execute_trial(job: TrialJob, on_event: EventCallback | None = None) -> TrialRecord:
    """Run the job's task and log its child run, start to end. Runs in any process (a Ray worker too)."""
    config = config_from_dict(job.config)  # imports the config's plugins here first
    trial = job.trial
    track = tracker(job.tracking_uri, job.workdir)
    tags = {ROLE: "trial", KIND: config.kind, TRIAL_KEY: trial.key, **trial.tags(),
            "prunelab.host": socket.gethostname(), "prunelab.pid": os.getpid()}  # where it ran (Ray: which worker)
    name = job.name or trial.name
    child = track.start_run(job.experiment, name, tags, parent_id=job.parent_id)
    emit(on_event, StageStarted(stage=job.task, detail=name, trial=job.index, trials=job.total))
    status, message, metrics = "FINISHED", "", {}
    try:
        metrics = TRIAL_TASKS[job.task](job, config, track, child, on_event)
    except TrainingDiverged as exc:
        status, message = "FAILED", str(exc)
    except PrunelabError as exc:
        status, message = "FAILED", str(exc)
    except KeyboardInterrupt:
        track.set_tags(child, {"prunelab.error": "interrupted"})
        track.end_run(child, "KILLED")
        raise
    except Exception as exc:  # a bug in one trial must not sink the sweep; the message says what it was
        status, message = "FAILED", f"{type(exc).__name__}: {exc}"
        track.set_tags(child, {"prunelab.traceback": traceback.format_exc()[-4000:]})
    if message:
        track.set_tags(child, {"prunelab.error": message})
    track.end_run(child, status)
    record = TrialRecord(trial.key, trial.tags(), status, metrics, child, message)
    emit(on_event, TrialFinished(trial=job.index, trials=job.total, status=status, params=trial.tags(),
                                 metrics=metrics, message=message, child_run_id=child))
    return record


def records_from_children(track: Tracker, parent_id: str, mark_stale: bool = True) -> dict[str, TrialRecord]:
    """The finished trials of a parent run, by trial key (the newest child wins).

    With mark_stale, children left RUNNING (by a process that died) are ended KILLED.
    """
    done: dict[str, TrialRecord] = {}
    for run in reversed(track.children(parent_id)):  # oldest first, so newer ones overwrite
        key = run.data.tags.get(TRIAL_KEY)
        if not key:
            continue
        status = run.info.status
        if status == "RUNNING":
            if mark_stale:  # left behind by a killed process
                track.end_run(run.info.run_id, "KILLED")
            continue
        if status not in ("FINISHED", "FAILED"):
            continue
        metrics = dict(run.data.metrics)
        if "final_test_accuracy" in metrics:
            metrics["test_accuracy"] = metrics["final_test_accuracy"]
        tags = {k: run.data.tags.get(k) for k in ("method", "strategy", "ratio", "seed", "epoch")}
        done[key] = TrialRecord(key, tags, status, metrics, run.info.run_id, run.data.tags.get("prunelab.error", ""))
    return done


class RunContext:
    """Handed to an experiment kind: the config, the data, the cache, the tracker and the event stream."""

    def __init__(self, config: Config, tracker_: Tracker, parent_id: str, on_event: EventCallback | None,
                 executor, done: dict[str, TrialRecord]):
        from ..cache import Cache
        from ..data import load_dataset
        from ..device import resolve_device

        self.config = config
        self.tracker = tracker_
        self.parent_id = parent_id
        self.on_event = on_event
        self.executor = executor
        self.done = done
        self.device = resolve_device(config.device)
        self.dataset = load_dataset(config.data.dataset, config.data.data_dir, self.device,
                                    config.data.train_size, config.data.test_size)
        tracker_.log_dataset_input(parent_id, self.dataset)  # here, not at creation: a detached launch loads no data
        self.cache = Cache(tracker_.store.cache_dir)
        self.artifacts: list[str] = []
        self.records: list[TrialRecord] = []

    def stage(self, stage: str, detail: str = "") -> None:
        emit(self.on_event, StageStarted(stage=stage, detail=detail))

    def log(self, message: str) -> None:
        emit(self.on_event, LogLine(message=message))

    def run_trials(self, jobs: list[tuple[Trial, Callable[[], np.ndarray | None]]], task: str = "retrain",
                   name_of: Callable[[Trial], str] | None = None) -> list[TrialRecord]:
        """Run the trials not done yet: selection (`kept()`) happens here, the `task` in the executor."""
        total = len(jobs)
        records: dict[str, TrialRecord] = {}
        pending: list[TrialJob] = []
        for i, (trial, kept) in enumerate(jobs):
            if trial.key in self.done:
                records[trial.key] = self.done[trial.key]
                continue
            pending.append(TrialJob(self.config.model_dump(mode="json"), trial, i, total, kept(),
                                    self.tracker.store.uri, os.getcwd(), self.parent_id, self.config.name,
                                    task=task, name=name_of(trial) if name_of else ""))
        if len(pending) < total:
            self.log(f"{total - len(pending)} of {total} trials already done (earlier, or shared with another "
                     f"part of this run), {len(pending)} to run")
        for record in self.executor.run(pending, self.on_event):
            records[record.key] = record
        ordered = [records[t.key] for t, _ in jobs if t.key in records]
        self.records.extend(ordered)
        return ordered

    def log_artifact_json(self, obj: Any, name: str) -> None:
        self.tracker.log_json(self.parent_id, obj, name)
        self.artifacts.append(name)

    def log_figure(self, figure, name: str) -> None:
        import matplotlib.pyplot as plt

        self.tracker.log_figure(self.parent_id, figure, name)
        plt.close(figure)
        self.artifacts.append(name)

    def log_text(self, text: str, name: str) -> None:
        self.tracker.log_text(self.parent_id, text, name)
        self.artifacts.append(name)

    def log_numpy(self, array: np.ndarray, name: str) -> None:
        self.tracker.log_numpy(self.parent_id, array, name)
        self.artifacts.append(name)


def summary_to_csv(rows: list[dict[str, Any]]) -> str:
    import csv
    import io

    if not rows:
        return ""
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def log_headline_metrics(track: Tracker, parent: str, rows: list[dict[str, Any]]) -> None:
    """best_test_accuracy and full_data_accuracy on the parent, for run lists and MLflow's table."""
    accs = [r["mean_accuracy"] for r in rows if isinstance(r.get("mean_accuracy"), float)
            and not math.isnan(r["mean_accuracy"])]
    full = [r["mean_accuracy"] for r in rows if r.get("method") == FULL]
    metrics = {}
    if accs:
        metrics["best_test_accuracy"] = max(accs)
    if full:
        metrics["full_data_accuracy"] = full[0]
    track.log_metrics(parent, metrics)


def _parent_tags(config: Config) -> dict[str, Any]:
    return {ROLE: "parent", KIND: config.kind, "prunelab.dataset": config.data.dataset,
            "prunelab.model": config.model, "prunelab.config_name": config.name,
            "mlflow.note.content": config.description or f"prunelab {config.kind} experiment"}


def create_parent_run(config: Config, tracking_uri: str | None = None) -> str:
    """Create the parent run with its config and params, so a detached process can pick it up."""
    track = tracker(tracking_uri, os.getcwd())
    run_name = f"{config.kind} {config.data.dataset} {config.model}"
    parent = track.start_run(config.name, run_name, _parent_tags(config))
    track.log_text(parent, config.to_toml(), "config.toml")
    track.log_params(parent, flatten(config.model_dump(mode="json")))
    return parent


def load_run_config(run_id: str, tracking_uri: str | None = None) -> Config:
    track = tracker(tracking_uri, os.getcwd())
    run = track.get_run(run_id)
    if run.data.tags.get(ROLE) != "parent":
        raise PrunelabError(f"run {run_id} is not a prunelab experiment (parent) run; pass the parent's id")
    text = track.load_text(run_id, "config.toml")
    if text is None:
        raise PrunelabError(f"run {run_id} has no config.toml artifact, so it cannot be resumed")
    import tomllib

    return config_from_dict(tomllib.loads(text), f"run {run_id} config.toml")


def run_experiment(config: Config, tracking_uri: str | None = None, on_event: EventCallback | None = None,
                   resume: str | None = None, executor=None) -> RunResult:
    """Run (or resume) an experiment: the parent run, its trials, summary and figures.

    Ctrl-C ends the run KILLED and re-raises KeyboardInterrupt; an unexpected
    error ends it FAILED and re-raises.
    """
    from . import EXPERIMENTS
    from ..executors import LocalExecutor

    start = time.time()
    track = tracker(tracking_uri, os.getcwd())
    executor = executor or LocalExecutor()
    if resume:
        parent = resume
        config = load_run_config(resume, tracking_uri)
        done = records_from_children(track, parent)
        track.set_status(parent, "RUNNING")
    else:
        parent = create_parent_run(config, tracking_uri)
        done = {}
    kind = EXPERIMENTS[config.kind]
    progress = track.store.progress_file(parent)
    sink = JsonLinesSink(progress)
    events = fan_out(sink, on_event)
    planned = kind.count_trials(config)
    track.log_metrics(parent, {"trials": planned})
    events(RunStarted(run_id=parent, experiment=config.name, kind=config.kind, trials=planned,
                      tracking_uri=track.store.uri))
    events(RunStatus(status="RUNNING", run_id=parent, message="resumed" if resume else ""))
    previous_sigterm = _sigterm_as_interrupt()
    try:
        ctx = RunContext(config, track, parent, events, executor, done)
        summary = kind.execute(ctx)
        records = ctx.records
        failed = [r for r in records if r.status == "FAILED"]
        status = "FINISHED"
        message = f"{len(failed)} of {len(records)} trials failed" if failed else ""
        log_headline_metrics(track, parent, summary)
        track.end_run(parent, status)
        events(RunStatus(status=status, run_id=parent, message=message))
        return RunResult(parent, config.name, status, summary, ctx.artifacts, records, track.store.uri,
                         str(progress), time.time() - start)
    except KeyboardInterrupt:
        track.end_run(parent, "KILLED")
        events(RunStatus(status="KILLED", run_id=parent, message="interrupted"))
        raise
    except BaseException as exc:
        track.set_tags(parent, {"prunelab.error": f"{type(exc).__name__}: {exc}"[:5000]})
        track.end_run(parent, "FAILED")
        events(RunStatus(status="FAILED", run_id=parent, message=f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        _restore_sigterm(previous_sigterm)
        sink.close()


def _sigterm_as_interrupt():
    """SIGTERM (a cancel from the TUI) ends the run like Ctrl-C: KILLED, with its state recorded."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        return None


def _restore_sigterm(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
