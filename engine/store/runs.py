"""Reading runs back: the list of experiments' parent runs, one run with its trials and summary, a trial's
metric history, and dead-run detection.

A process killed with SIGKILL leaves its MLflow run RUNNING. The progress file
records the pid and host; when that process is gone, the run is marked KILLED
here, so the CLI, the TUI and MLflow's UI all show it as such.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .. import names
from .process import process_alive
from .progress import RunProgress, fold, read_events
from .tracking import retry

if TYPE_CHECKING:  # RunInfo loads without numpy, scipy or MLflow (the TUI's first table: store/sqlite_runs.py)
    from .tracking import Tracker

# per-epoch metrics of a trial (step = epoch), as the runner logs them
ACCURACY, TRAIN_LOSS, TEST_LOSS = "test_accuracy", "train_loss", "test_loss"
EPOCH_METRICS = (ACCURACY, TRAIN_LOSS, TEST_LOSS)
SAMPLES_SEEN = "samples_seen"  # the dynamic kind's cumulative samples trained on, per epoch


@dataclass
class TrialRecord:
    """A trial's outcome, as its child run holds it."""

    key: str
    tags: dict[str, Any]
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    child_run_id: str = ""
    message: str = ""


@dataclass
class RunInfo:
    run_id: str
    experiment: str
    name: str
    kind: str
    status: str
    dataset: str
    model: str
    best_accuracy: float | None
    trials_done: int
    trials: int
    start_time: float  # seconds since the epoch
    end_time: float | None
    active_seconds: float | None = None  # the sessions that ended (names.ACTIVE_SECONDS); None: not recorded
    session_start: float | None = None  # a running run: when its current session (the start or a resume) began
    full_accuracy: float | None = None  # the full-data trials' mean accuracy (names.FULL_ACCURACY)
    best_pruned: float | None = None  # the best mean accuracy of a pruned setting (names.BEST_PRUNED)

    def duration_at(self, now: float) -> float | None:
        """Seconds its processes ran: a resumed run's dead time between sessions does not count."""
        running = self.status == names.RUNNING
        if self.active_seconds is not None and (not running or self.session_start):
            return self.active_seconds + (max(0.0, now - self.session_start) if running else 0.0)
        end = self.end_time or (now if running else None)
        return max(0.0, end - self.start_time) if end else None

    @property
    def duration(self) -> float | None:
        return self.duration_at(time.time())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "duration": self.duration}


@dataclass(frozen=True)
class TrialRow:
    """One child run (a trial): where it sits in the sweep grid and how it ended."""

    run_id: str
    method: str
    strategy: str
    ratio: float
    seed: int
    epoch: int
    status: str
    accuracy: float | None

    @property
    def label(self) -> str:
        """The engine's trial name (as progress events carry it), without its slashes, to fit narrow tables."""
        if self.method == names.FULL:
            return f"full-data seed {self.seed}"
        return f"{self.method} {self.strategy} keep {self.ratio:g} seed {self.seed} e{self.epoch}"


@dataclass
class RunDetail:
    """A parent run with what its plots draw: its summary rows and one row per trial, full data first."""

    run: RunInfo
    summary: list[dict[str, Any]]
    trials: list[TrialRow]


def progress_in(store, run_id: str) -> RunProgress | None:
    """The run's progress file, folded (None if it has none); `store` is a tracking.Store."""
    path = store.progress_file(run_id)
    return fold(read_events(path)) if path.exists() else None


def progress_of(track: Tracker, run_id: str) -> RunProgress | None:
    return progress_in(track.store, run_id)


def run_info(run_id: str, experiment: str, name: str, status: str, tags: dict[str, str], metrics: dict[str, float],
             trials_done: int, start_ms: int, end_ms: int | None, progress: RunProgress | None) -> RunInfo:
    """A parent run's RunInfo from its fields, read through MLflow (`list_runs`) or from the SQLite file
    (store/sqlite_runs.py); `progress` is the live run's progress file, None when it is not running."""
    return RunInfo(
        run_id=run_id, experiment=experiment, name=name or "", kind=tags.get(names.KIND, ""), status=status,
        dataset=tags.get(names.DATASET, ""), model=tags.get(names.MODEL, ""),
        best_accuracy=metrics.get("best_test_accuracy"), trials_done=trials_done,
        trials=int(metrics.get("trials", 0)) or (progress.trials if progress else 0),
        start_time=start_ms / 1000, end_time=end_ms / 1000 if end_ms else None,
        active_seconds=metrics.get(names.ACTIVE_SECONDS),
        session_start=progress.started if progress is not None and progress.started else None,
        full_accuracy=metrics.get(names.FULL_ACCURACY), best_pruned=metrics.get(names.BEST_PRUNED))


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if out != out else out


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def _is_trial(run) -> bool:
    return run.data.tags.get(names.ROLE) == names.TRIAL_ROLE


def trials_done(children: Iterator | list) -> dict[str, int]:
    """Per parent run id, its trials that ended (FINISHED or FAILED), each counted once: a trial run again by
    `--retry-failed` has two children with one trial key."""
    keys: dict[str, set[str]] = defaultdict(set)
    for child in children:
        if _is_trial(child) and child.info.status in (names.FINISHED, names.FAILED):
            tags = child.data.tags
            keys[tags.get(names.PARENT, "")].add(tags.get(names.TRIAL_KEY) or child.info.run_id)
    return {parent: len(done) for parent, done in keys.items()}


def ended_as(tags: dict[str, str], progress: RunProgress | None) -> tuple[str, str] | None:
    """How a run the store calls RUNNING ended, when its process is gone: (status, why), or None while the process
    lives or cannot be told (another host, nothing recorded).

    The process is the one the progress file names; a run killed after its parent run
    was created but before its progress file was written is told by the parent's own
    tags (pid, host and start time of the process that created it). The status is the
    one the progress file recorded last (a run that could not write FAILED or KILLED to
    a full or locked store wrote it there), else KILLED.
    """
    if progress is not None and progress.pid:
        if progress.alive is not False:
            return None
        status = progress.status if progress.status in names.TERMINAL else names.KILLED
        return status, f"process {progress.pid} on {progress.host} died"
    pid = _int(tags.get(names.PID))
    host = tags.get(names.HOST, "")
    if not pid or process_alive(pid, host, _float(tags.get(names.PID_START)) or 0.0) is not False:
        return None
    return names.KILLED, f"process {pid} on {host} died before it wrote its progress file"


def parent_run(track: Tracker, run_id: str, children: list | None = None) -> RunInfo:
    """One parent run, as `list_runs` lists it: live status (KILLED once its process died) and trials counted.
    `children` saves a query when the caller has them already."""
    run = track.get_run(run_id)
    experiment = retry(track.client.get_experiment, run.info.experiment_id).name
    status = reconcile(track, run)
    children = track.children(run_id) if children is None else children
    done = trials_done(children).get(run_id, 0)
    progress = progress_of(track, run_id) if status == names.RUNNING else None
    return run_info(run_id, experiment, run.info.run_name, status, run.data.tags, run.data.metrics, done,
                    run.info.start_time, run.info.end_time, progress)


def trial_row(child) -> TrialRow:
    """A child run as a TrialRow: its grid tags, status and final test accuracy."""
    tags, metrics = child.data.tags, child.data.metrics
    accuracy = metrics.get("final_test_accuracy", metrics.get(ACCURACY))
    return TrialRow(child.info.run_id, tags.get("method", "?"), tags.get("strategy", ""),
                    _float(tags.get("ratio")) or 1.0, _int(tags.get("seed")), _int(tags.get("epoch")),
                    child.info.status, _float(accuracy))


def run_detail(track: Tracker, run_id: str) -> RunDetail:
    """A parent run, its summary rows (empty while no trial has finished) and its trials, full data first."""
    children = track.children(run_id)
    trials = sorted((trial_row(c) for c in children if _is_trial(c)),
                    key=lambda t: (t.method != names.FULL, t.method, t.strategy, t.ratio, t.epoch, t.seed))
    try:
        summary = run_summary(track, run_id)
    except (TypeError, ValueError):  # trials without the sweep's tags (nothing to fold), or a damaged summary.json
        summary = []
    return RunDetail(parent_run(track, run_id, children), summary, trials)


def metric_history(track: Tracker, run_id: str,
                   keys: Sequence[str] = EPOCH_METRICS) -> dict[str, list[tuple[int, float]]]:
    """Each metric's logged values of one run as (step, value), by step (a trial's step is its epoch)."""
    return {key: sorted((int(m.step), float(m.value)) for m in retry(track.client.get_metric_history, run_id, key))
            for key in keys}


def _seen_points(track: Tracker, child_id: str) -> Iterator[tuple[int, float, float]]:
    """(step, samples seen, test accuracy) of one trial: the dynamic kind logs `samples_seen` per epoch; the online
    kind's steps are the examples backpropagated so far."""
    history = metric_history(track, child_id, (SAMPLES_SEEN, ACCURACY))
    seen = dict(history[SAMPLES_SEEN])
    for step, accuracy in history[ACCURACY]:
        x = seen.get(step) if seen else float(step)
        if x is not None:
            yield step, float(x), accuracy


def samples_seen_curves(track: Tracker, run_id: str) -> dict[str, list[tuple[float, float]]]:
    """Test accuracy against samples seen, per method (full data included): each step's mean over the finished
    seeds, for the dynamic and online kinds."""
    points: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for child in track.children(run_id):
        if child.info.status == names.FINISHED:
            method = child.data.tags.get("method", "?")
            for step, x, accuracy in _seen_points(track, child.info.run_id):
                points[method][step].append((x, accuracy))
    return {method: [(sum(x for x, _ in v) / len(v), sum(a for _, a in v) / len(v)) for _, v in sorted(steps.items())]
            for method, steps in sorted(points.items())}


def reconcile(track: Tracker, run) -> str:
    """The run's status, after marking it ended (`ended_as`) if it says RUNNING but its process is dead."""
    status = run.info.status
    if status != names.RUNNING:
        return status
    ended = ended_as(run.data.tags, progress_of(track, run.info.run_id))
    if ended is None:
        return status
    status, why = ended
    if not getattr(track, "read_only", False):  # a read-only store is only read: the status is shown, not stored
        track.end_run(run.info.run_id, status)
        if status == names.KILLED or not run.data.tags.get(names.ERROR):
            track.set_tags(run.info.run_id, {names.ERROR: why})
    return status


def list_runs(track: Tracker, status: str | None = None, kind: str | None = None) -> list[RunInfo]:
    """Parent runs, newest first, with live status and trial counts."""
    experiments = {e.experiment_id: e.name for e in track.client.search_experiments()}
    parents = track.search(list(experiments), filter_string=f"tags.`{names.ROLE}` = '{names.PARENT_ROLE}'")
    children = track.search(list(experiments), filter_string=f"tags.`{names.ROLE}` = '{names.TRIAL_ROLE}'")
    done = trials_done(children)
    out = []
    for run in parents:
        run_status = reconcile(track, run)
        run_kind = run.data.tags.get(names.KIND, "")
        if (status and run_status != status.upper()) or (kind and run_kind != kind):
            continue
        progress = progress_of(track, run.info.run_id) if run_status == names.RUNNING else None
        out.append(run_info(run.info.run_id, experiments.get(run.info.experiment_id, ""), run.info.run_name,
                            run_status, run.data.tags, run.data.metrics, done.get(run.info.run_id, 0),
                            run.info.start_time, run.info.end_time, progress))
    return out


def run_summary(track: Tracker, run_id: str) -> list[dict[str, Any]]:
    """The summary rows of a run: its summary.json, or, while it runs, folded from finished trials."""
    from ..analysis import summarize_seeds

    text = track.load_text(run_id, names.SUMMARY_JSON)
    if text:
        return json.loads(text)
    return summarize_seeds(list(records_from_children(track, run_id, mark_stale=False).values()))


def trial_rows(track: Tracker, run_id: str) -> list[dict[str, Any]]:
    """One row per finished or failed trial (the newest child of each), for `export --trials`."""
    rows = []
    for record in records_from_children(track, run_id, mark_stale=False).values():
        metrics = {k: v for k, v in sorted(record.metrics.items()) if k != "final_test_accuracy"}
        rows.append({**record.tags, "status": record.status, **metrics, "child_run_id": record.child_run_id,
                     "error": record.message})
    return sorted(rows, key=lambda r: tuple(str(r.get(k, "")) for k in names.TRIAL_TAGS))


def records_from_children(track: Tracker, parent_id: str, mark_stale: bool = True) -> dict[str, TrialRecord]:
    """The finished trials of a parent run, by trial key (the newest child wins).

    With mark_stale, children left RUNNING (by a process that died) are ended KILLED.
    """
    done: dict[str, TrialRecord] = {}
    for run in reversed(track.children(parent_id)):  # oldest first, so newer ones overwrite
        key = run.data.tags.get(names.TRIAL_KEY)
        if not key:
            continue
        status = run.info.status
        if status == names.RUNNING:
            if mark_stale:  # left behind by a killed process
                track.end_run(run.info.run_id, names.KILLED)
            continue
        if status not in (names.FINISHED, names.FAILED):
            continue
        metrics = dict(run.data.metrics)
        if "final_test_accuracy" in metrics:
            metrics["test_accuracy"] = metrics["final_test_accuracy"]
        tags = {k: run.data.tags.get(k) for k in names.TRIAL_TAGS}
        done[key] = TrialRecord(key, tags, status, metrics, run.info.run_id, run.data.tags.get(names.ERROR, ""))
    return done
