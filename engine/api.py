"""The engine's public API: what the CLI, the TUI and scripts call.

The CLI holds no logic of its own: every command is one call here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .config import Config, load_config
from .events import EventCallback, RunStarted
from .experiments.base import RunResult, create_parent_run, run_experiment, summary_to_csv
from .tracking import KIND, tracker

__all__ = ["load_config", "run", "launch_detached", "list_runs", "show", "top_samples", "export_csv"]


def _executor(name: str | Any, options: dict[str, Any] | None):
    from .executors import make_executor

    return make_executor(name, **(options or {})) if isinstance(name, str) else name


def run(config: Config | str | Path | None = None, on_event: EventCallback | None = None,
        tracking_uri: str | None = None, resume: str | None = None, executor: str | Any = "local",
        executor_options: dict[str, Any] | None = None) -> RunResult:
    """Run an experiment (a Config, a TOML path or a preset name) or resume one by run id.

    Returns the run id, status, summary rows and artifact names. Ctrl-C ends the
    run KILLED and raises KeyboardInterrupt.
    """
    if resume is None and not isinstance(config, Config):
        config = load_config(config)
    return run_experiment(config, tracking_uri=tracking_uri, on_event=on_event, resume=resume,
                          executor=_executor(executor, executor_options))


def launch_detached(config: Config | None, tracking_uri: str | None = None, resume: str | None = None,
                    executor: str = "local", executor_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start an experiment in its own process session and return at once with its run id.

    The parent run is created here, so the id is known before the child starts;
    the child picks it up with `--resume`. Closing the terminal does not stop it.
    """
    track = tracker(tracking_uri, os.getcwd())
    run_id = resume or create_parent_run(config, tracking_uri)
    progress = track.store.progress_file(run_id)
    progress.parent.mkdir(parents=True, exist_ok=True)
    log_path = progress.with_suffix(".log")
    cmd = [sys.executable, "-m", "engine.cli"]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    cmd += ["run", "--resume", run_id, "--executor", executor]
    if executor_options and executor_options.get("address"):
        cmd += ["--ray-address", executor_options["address"]]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=os.getcwd(), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # a first line at once, so a follower sees the run (and its pid) before the child writes its own
    name = config.name if config else track.get_run(run_id).data.tags.get("prunelab.config_name", "")
    kind = config.kind if config else track.get_run(run_id).data.tags.get(KIND, "")
    with open(progress, "a", encoding="utf-8") as f:
        f.write(RunStarted(run_id=run_id, experiment=name, kind=kind, trials=0, pid=proc.pid,
                           tracking_uri=track.store.uri).to_json() + "\n")
    return {"run_id": run_id, "pid": proc.pid, "status": "RUNNING", "progress_file": str(progress),
            "log_file": str(log_path), "tracking_uri": track.store.uri}


def list_runs(tracking_uri: str | None = None, status: str | None = None, kind: str | None = None):
    """Parent runs, newest first; a run whose process died is marked KILLED."""
    from .runs import list_runs as _list

    return _list(tracker(tracking_uri, os.getcwd()), status=status, kind=kind)


def show(run_id: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """A run's status and summary rows (from summary.json, or folded from finished trials while it runs)."""
    from .runs import reconcile, run_summary

    track = tracker(tracking_uri, os.getcwd())
    run = track.get_run(run_id)
    experiment = track.client.get_experiment(run.info.experiment_id).name
    kind = run.data.tags.get(KIND, "")
    report = {"run_id": run_id, "experiment": experiment, "kind": kind,
              "status": reconcile(track, run), "summary": run_summary(track, run_id),
              "metrics": dict(run.data.metrics)}
    if kind in ("overlap", "study"):  # the methods x methods matrices of overlap.json, once it is written
        text = track.load_text(run_id, "overlap.json")
        report["overlap"] = json.loads(text) if text else None
    return report


def top_samples(run_id: str, method: str = "loss", epoch: int | None = None, n: int = 10, lowest: bool = False,
                tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """The n highest (or lowest) scored training samples of a scored run, highest first.

    Each is a dict: index, label (the one the scorers saw: noisy in a noise run),
    predicted (surrogate 0's prediction, None if the run did not log them), score and
    image (uint8, CHW). `epoch` defaults to the last surrogate epoch scored.
    """
    import tempfile

    import numpy as np

    from .data import load_dataset
    from .errors import DataError, UserError
    from .experiments.base import load_run_config
    from .experiments.overlap import pick_samples

    track = tracker(tracking_uri, os.getcwd())
    config = load_run_config(run_id, tracking_uri)
    stored = [a.path.rsplit("/", 1)[-1][:-len(".npy")] for a in track.client.list_artifacts(run_id, "scores")]
    epochs = {int(name.rpartition("@e")[2]) for name in stored if name.rpartition("@e")[0] == method}
    if not epochs:
        methods = sorted({name.rpartition("@e")[0] for name in stored} - {"predictions"})
        raise UserError(f"run {run_id} has no scores of {method!r}; "
                        + (f"it has: {', '.join(methods)}" if methods else "it logged no scores (yet)"))
    epoch = max(epochs) if epoch is None else epoch
    if epoch not in epochs:
        raise UserError(f"run {run_id} has {method} scores at epoch(s) {', '.join(map(str, sorted(epochs)))}, "
                        f"not at epoch {epoch}")
    with tempfile.TemporaryDirectory() as tmp:
        scores = np.load(track.download(run_id, f"scores/{method}@e{epoch}.npy", tmp))
        found = {name: track.download(run_id, path, tmp) for name, path in
                 (("predictions", f"scores/predictions@e{epoch}.npy"), ("labels", "noise/labels.npy"))}
        arrays = {name: np.load(path) for name, path in found.items() if path is not None}
    ds = load_dataset(config.data.dataset, config.data.data_dir, "cpu", config.data.train_size, config.data.test_size)
    if len(scores) != len(ds):
        raise DataError(f"run {run_id} scored {len(scores)} samples but {config.data.dataset} now has {len(ds)}; "
                        "the data set changed since the run")
    labels = arrays.get("labels", ds.y_train.numpy())
    return pick_samples(scores, labels, ds.x_train, arrays.get("predictions"), n, lowest)


def export_csv(run_id: str, tracking_uri: str | None = None) -> str:
    return summary_to_csv(show(run_id, tracking_uri)["summary"])
