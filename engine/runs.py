"""Reading runs back: the list of experiments' parent runs, their summaries, and dead-run detection.

A process killed with SIGKILL leaves its MLflow run RUNNING. The progress file
records the pid and host; when that process is gone, the run is marked KILLED
here, so the CLI, the TUI and MLflow's UI all show it as such.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from .events import RunProgress, fold, read_events
from .tracking import KIND, PARENT, ROLE, Tracker


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

    @property
    def duration(self) -> float | None:
        import time

        end = self.end_time or (time.time() if self.status == "RUNNING" else None)
        return end - self.start_time if end else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "duration": self.duration}


def progress_of(track: Tracker, run_id: str) -> RunProgress | None:
    path = track.store.progress_file(run_id)
    return fold(read_events(path)) if path.exists() else None


def reconcile(track: Tracker, run) -> str:
    """The run's status, after marking it KILLED if it says RUNNING but its process is dead."""
    status = run.info.status
    if status != "RUNNING":
        return status
    progress = progress_of(track, run.info.run_id)
    if progress is not None and progress.pid and progress.alive is False:
        track.end_run(run.info.run_id, "KILLED")
        track.set_tags(run.info.run_id, {"prunelab.error": f"process {progress.pid} on {progress.host} died"})
        return "KILLED"
    return status


def list_runs(track: Tracker, status: str | None = None, kind: str | None = None) -> list[RunInfo]:
    """Parent runs, newest first, with live status and trial counts."""
    experiments = {e.experiment_id: e.name for e in track.client.search_experiments()}
    parents = track.search(list(experiments), filter_string=f"tags.`{ROLE}` = 'parent'")
    children = track.search(list(experiments), filter_string=f"tags.`{ROLE}` = 'trial'")
    done: dict[str, int] = {}
    for child in children:
        if child.info.status in ("FINISHED", "FAILED"):
            parent = child.data.tags.get(PARENT, "")
            done[parent] = done.get(parent, 0) + 1
    out = []
    for run in parents:
        run_status = reconcile(track, run)
        run_kind = run.data.tags.get(KIND, "")
        if (status and run_status != status.upper()) or (kind and run_kind != kind):
            continue
        progress = progress_of(track, run.info.run_id) if run_status == "RUNNING" else None
        trials = int(run.data.metrics.get("trials", 0)) or (progress.trials if progress else 0)
        out.append(RunInfo(
            run_id=run.info.run_id, experiment=experiments.get(run.info.experiment_id, ""),
            name=run.info.run_name or "", kind=run_kind, status=run_status,
            dataset=run.data.tags.get("prunelab.dataset", ""), model=run.data.tags.get("prunelab.model", ""),
            best_accuracy=run.data.metrics.get("best_test_accuracy"),
            trials_done=done.get(run.info.run_id, 0), trials=trials,
            start_time=run.info.start_time / 1000, end_time=run.info.end_time / 1000 if run.info.end_time else None))
    return out


def run_summary(track: Tracker, run_id: str) -> list[dict[str, Any]]:
    """The summary rows of a run: its summary.json, or, while it runs, folded from finished trials."""
    text = track.load_text(run_id, "summary.json")
    if text:
        return json.loads(text)
    from .experiments.base import records_from_children
    from .experiments.prune import summarize

    return summarize(list(records_from_children(track, run_id, mark_stale=False).values()))
