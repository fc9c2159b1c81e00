"""The runner: owns the parent MLflow run, the progress file, resume, signals and the run's status.

An experiment kind only plans trials and says what each does; the runner
logs its summary rows (summary.csv, summary.json) and headline metrics, for
every kind alike.

Run control: each run has one CancelToken, carried by its RunContext to whoever
does the work. Ctrl-C or SIGTERM (a cancel from the TUI) only sets it; the trainer
(per batch), the scoring pass (per batch), the runner (before each selection and
trial) and the Ray executor (each poll) look at it and stop at a consistent point,
with `Cancelled`, a KeyboardInterrupt: the run ends KILLED and the CLI exits 130.
A second signal raises KeyboardInterrupt at once, for a user who insists.
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import signal
import socket
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import names
from ..cancel import CancelToken
from ..cancel import active as active_cancel
from ..cancel import check as check_cancel
from ..config import Config, config_from_dict
from ..errors import UserError
from ..kinds import KINDS, used_config
from ..store.events import EventCallback, RunStarted, RunStatus, fan_out
from ..store.process import process_start
from ..store.progress import JsonLinesSink, ensure_folder, fold, read_events
from ..store.runlock import RunLock
from ..store.runs import records_from_children
from ..store.tracking import Tracker, store_error, tracker
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
    """The parent run's tags, with the process that creates it (pid, host, start time): a run killed before it
    wrote its progress file is still told dead (store/runs.py `ended_as`), not RUNNING for ever."""
    return {names.ROLE: names.PARENT_ROLE, names.KIND: config.kind, names.DATASET: config.data.dataset,
            names.MODEL: config.model, names.CONFIG_NAME: config.name,
            names.NOTE: config.description or f"prunelab {config.kind} experiment",
            names.PID: os.getpid(), names.HOST: socket.gethostname(), names.PID_START: process_start(os.getpid())}


def parent_name(config: Config) -> str:
    """`<kind> <dataset> <model>`, and for a sweep what tells two runs of one config apart: methods @ keep ratios."""
    name = f"{config.kind} {config.data.dataset} {config.model}"
    if KINDS[config.kind].sections is not None and "sweep" in KINDS[config.kind].sections and config.kind != "study":
        sweep = config.sweep
        name += f" · {','.join(sweep.methods)} @ {','.join(f'{r:g}' for r in sweep.keep_ratios)}"
    return name


def unique_run_name(track: Tracker, experiment: str, base: str) -> str:
    """`base`, or `base #N` (the first N free) when runs of the experiment have that name already: two runs of one
    config read apart in MLflow's run list."""
    quote = "'" if "'" not in base else '"'
    like = "" if quote in base else f"attributes.run_name LIKE {quote}{base}%{quote}"  # else: read every run's name
    taken = {run.info.run_name for run in track.search([track.experiment_id(experiment)], filter_string=like)}
    if base not in taken:
        return base
    n = 2
    while f"{base} #{n}" in taken:
        n += 1
    return f"{base} #{n}"


def create_parent_run(config: Config, tracking_uri: str | None = None) -> str:
    """Create the parent run with its config and params, so a detached process can pick it up."""
    from ..device import resolve_device

    resolve_device(config.device)  # device = "cuda" on a machine without CUDA: one line, before any run exists
    track = tracker(tracking_uri, os.getcwd())
    ensure_folder(track.store.progress_dir)  # a file in its place, full, read-only: before the run exists
    name = unique_run_name(track, config.name, parent_name(config))
    parent = track.start_run(config.name, name, parent_tags(config))
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
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"run {run_id}'s {names.CONFIG_TOML} artifact is not valid TOML ({exc}); it was changed "
                        "after the run started, so the run cannot be resumed: start it again from its config") from None
    return config_from_dict(data, f"run {run_id} {names.CONFIG_TOML}")


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


def check_data_unchanged(track: Tracker, run_id: str, config: Config, allow: bool = False) -> None:
    """A resume trains the rest of the trials on the data the first ones trained on: the digest of the data set as
    the config reads it now against the one the run recorded (its tag, or its MLflow data set input). A change
    is one line (exit 2) and the run is left as it was; with `allow` it is accepted and tagged (DATA_CHANGED).
    A run that died before it loaded its data recorded none: nothing to compare."""
    from ..data.dataset import load_dataset

    run = track.get_run(run_id)
    recorded = run.data.tags.get(names.DATA_DIGEST) or next(
        (i.dataset.digest for i in reversed(run.inputs.dataset_inputs or [])
         if any(t.key == names.DATA_CONTEXT and t.value == "train" for t in i.tags)), None)
    if recorded is None:
        return
    data = config.data
    digest = load_dataset(data.dataset, data.data_dir, "cpu", data.train_size, data.test_size, data.options,
                          fresh=True).digest()  # the files as they are now, not as this process read them before
    if digest == recorded:
        return
    if not allow:
        raise UserError(f"run {run_id} trained on {data.dataset} with digest {recorded}, but it now reads {digest}: "
                        "the data changed since; restore it, or resume with --allow-data-change (the run is then "
                        f"tagged {names.DATA_CHANGED})")
    before = run.data.tags.get(names.DATA_CHANGED)
    changed = f"{before}; {recorded} -> {digest}" if before else f"{recorded} -> {digest}"
    track.set_tags(run_id, {names.DATA_DIGEST: digest, names.DATA_CHANGED: changed})


def run_experiment(config: Config | None, tracking_uri: str | None = None, on_event: EventCallback | None = None,
                   resume: str | None = None, executor=None, retry_failed: bool = False,
                   allow_data_change: bool = False) -> RunResult:
    """Run (or resume) an experiment: the parent run, its trials, summary and figures.

    A resume runs the trials that have no finished child; with `retry_failed`, the
    FAILED ones too (their failed children stay, for the record).

    One process at a time works on a run (RunLock); a resume of a run that is
    still running, or being resumed, fails before it touches the run. Ctrl-C ends
    the run KILLED and re-raises KeyboardInterrupt; an unexpected error ends it
    FAILED and re-raises. A resume on data that changed since the run loaded it fails
    before it touches the run, unless `allow_data_change` (check_data_unchanged).
    """
    track = tracker(tracking_uri, os.getcwd())
    track.require_writable()  # a read-only store: one line naming its folder, before any lock or progress file
    ensure_folder(track.store.progress_dir)  # a file in its place, full, read-only: before any run exists
    if resume is not None:
        if not resume.strip():
            raise UserError("--resume: the run id is empty; pass a run id from `prunelab runs`")
        resume = track.resolve(resume)
        track.get_run(resume)  # not found: one line, before any lock file is made
        with RunLock(track.store.progress_file(resume), resume):
            check_resumable(track, resume)
            check_data_unchanged(track, resume, load_run_config(resume, tracking_uri), allow_data_change)
            return _run_locked(track, None, tracking_uri, on_event, resume, executor, retry_failed=retry_failed)
    parent = create_parent_run(config, tracking_uri)
    with RunLock(track.store.progress_file(parent), parent):
        return _run_locked(track, config, tracking_uri, on_event, None, executor, parent)


def _run_locked(track: Tracker, config: Config | None, tracking_uri: str | None, on_event: EventCallback | None,
                resume: str | None, executor, parent: str = "", retry_failed: bool = False) -> RunResult:
    start = time.time()
    if resume:
        parent = resume
        config = load_run_config(resume, tracking_uri)
        done = records_from_children(track, parent)
        if retry_failed:
            done = {key: record for key, record in done.items() if record.status != names.FAILED}
        active_before = track.get_run(parent).data.metrics.get(names.ACTIVE_SECONDS, 0.0)
    else:
        done, active_before = {}, 0.0
    kind = KINDS.check(config.kind)
    progress = track.store.progress_file(parent)
    resumed = bool(resume) and ran_before(progress)
    cancel = CancelToken()
    run = _Ending(track, parent, cancel, active_before, start)
    with cancel_on_signals(cancel), active_cancel(cancel):  # over the end too: a SIGTERM there still ends it KILLED
        try:
            sink = run.sink = JsonLinesSink(progress)
            run.events = events = fan_out(sink, on_event)
            planned = kind.count_trials(config)
            events(RunStarted(run_id=parent, experiment=config.name, kind=config.kind, trials=planned,
                              tracking_uri=track.store.uri, pid_start=process_start(os.getpid())))
            if resume:  # after RunStarted: a reader that sees RUNNING finds this process in the progress file
                track.set_status(parent, names.RUNNING)
            track.log_metrics(parent, {"trials": planned})
            events(RunStatus(status=names.RUNNING, run_id=parent, message="resumed" if resumed else "started"))
            ctx = RunContext(config, track, parent, events, executor or LocalExecutor(), done, cancel=cancel)
            summary = kind.execute(ctx)
            check_cancel(cancel)  # cancelled after the last trial: the user asked, the run ends KILLED
            return _finish(ctx, summary, run)
        except KeyboardInterrupt:
            run.end(names.KILLED, "interrupted")
            raise
        except BaseException as exc:
            error = store_error(exc, track.store) if isinstance(exc, Exception) else None
            run.end(names.FAILED, str(error) if error else f"{type(exc).__name__}: {exc}")
            if error is not None and error is not exc:  # the store cannot be used: one line naming the folder
                raise error from exc
            raise
        finally:
            run.close()


class _Ending:
    """How a run ends in the store and its progress file, whatever stopped it.

    A run that ends because of the store (full, locked by another process, gone) or
    because it was cancelled while the store was locked must still end: each write
    is tried once and the first that fails stops the rest, the progress file says how
    the run ended whenever it can be written (`runs` reads it back for a run whose
    store entry stayed RUNNING: store/runs.py `ended_as`), and signals that arrive
    meanwhile are absorbed (`CancelToken.shielded`).
    """

    def __init__(self, track: Tracker, parent: str, cancel: CancelToken, active_before: float, start: float):
        self.track, self.parent, self.cancel = track, parent, cancel
        self.active_before, self.start = active_before, start
        self.sink: JsonLinesSink | None = None
        self.events: EventCallback | None = None

    def end(self, status: str, message: str) -> None:
        """Best effort: record the status in the store, then in the progress file; never raises."""
        with self.cancel.shielded():
            writes = [lambda: _log_active(self.track, self.parent, self.active_before, self.start),
                      lambda: self.track.end_run(self.parent, status)]
            if status == names.FAILED:
                writes.insert(0, lambda: self.track.set_tags(self.parent, {names.ERROR: message[:5000]}))
            for write in writes:
                try:
                    write()
                except (Exception, KeyboardInterrupt):  # noqa: BLE001 -- the store cannot take it now; the
                    break  # progress file says how the run ended, and `runs` completes the store from it
            self.announce(status, message)

    def finish(self, message: str) -> None:
        """The run ended FINISHED: each write must succeed (a failure ends it FAILED instead)."""
        _log_active(self.track, self.parent, self.active_before, self.start)
        self.track.end_run(self.parent, names.FINISHED)
        self.announce(names.FINISHED, message)

    def announce(self, status: str, message: str) -> None:
        if self.events is None:
            return
        # a progress file that cannot be written, a caller's callback that raises: how the run ended is in the store
        with self.cancel.shielded(), contextlib.suppress(Exception):
            self.events(RunStatus(status=status, run_id=self.parent, message=message))

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()


def _finish(ctx: RunContext, summary: list[dict[str, Any]], run: _Ending) -> RunResult:
    """Log the summary and headline metrics, end the run FINISHED; its result."""
    track, parent = ctx.tracker, ctx.parent_id
    log_summary(ctx, summary)
    failed = [r for r in ctx.records if r.status == names.FAILED]
    message = f"{len(failed)} of {len(ctx.records)} trials failed" if failed else ""
    log_headline_metrics(track, parent, summary)
    run.finish(message)
    return RunResult(parent, ctx.config.name, names.FINISHED, summary, ctx.artifacts, ctx.records, track.store.uri,
                     str(track.store.progress_file(parent)), time.time() - run.start)


def _log_active(track: Tracker, parent: str, before: float, start: float) -> None:
    """The run's active time so far: earlier sessions' plus this one's, so a resumed run's duration leaves out
    the hours it lay dead (MLflow's end - start counts them)."""
    track.log_metrics(parent, {names.ACTIVE_SECONDS: before + time.time() - start})


GRACE_S = 1.0  # a repeat of the signal sooner than this after the first is the same request, not insistence


@contextmanager
def cancel_on_signals(token: CancelToken) -> Iterator[CancelToken]:
    """Inside, SIGTERM and Ctrl-C set `token` (the work stops at its next poll); the previous handlers after.

    Why only a flag: an exception raised in a handler lands wherever the main thread
    happens to be; inside a weakref callback or a __del__ (SQLAlchemy has both) Python
    prints "Exception ignored" and carries on, and the run would never end. A repeat of
    the signal within GRACE_S (two SIGTERMs 0.3 s apart, a double Ctrl-C) is the same
    request; a later one, from a user who insists, raises KeyboardInterrupt at once,
    unless the run is already recording how it ended (`CancelToken.shielded`). Ctrl-C
    gets the handler only while Python's default is installed (a caller's own is kept);
    outside the main thread signals are left alone. (The CLI absorbs repeats while its
    process exits: engine.cancel.absorb_signals.)
    """
    def handler(signum: int, frame: Any) -> None:
        if not token.cancelled:
            token.cancel(signal.Signals(signum).name)
        elif not token.shielding and time.monotonic() - (token.cancelled_at or 0.0) >= GRACE_S:
            raise KeyboardInterrupt

    previous: dict[int, Any] = {}
    try:
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, handler)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield token
    finally:
        for signum, before in previous.items():
            if before is not None:  # None: installed from C, nothing Python can put back
                signal.signal(signum, before)
