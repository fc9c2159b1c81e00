"""The engine's public API: what the CLI, the TUI and scripts call.

The CLI holds no logic of its own: every command is one call here. Imports of
the runner, the scorers and the trainer (torch) and of MLflow-backed readers
happen inside the functions that need them, so `prunelab config check` and the
TUI's first frame never wait for torch.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, overload

import numpy as np
from pydantic import ValidationError

from . import names
from .config import Config, SurrogateConfig, TrainConfig, config_error, config_from_dict, load_config
from .errors import ConfigError, DataError, UserError
from .store.events import EventCallback, RunStarted
from .store.tracking import resolve_store, tracker

if TYPE_CHECKING:
    from torch import nn

    from .data.dataset import Dataset
    from .runner.trials import RunResult
    from .scoring.surrogate import ScoreResult
    from .store.cache import Cache
    from .trainer import TrainResult

__all__ = [
    "as_dataset",
    "export_csv",
    "launch_detached",
    "list_runs",
    "load_config",
    "run",
    "score",
    "score_result",
    "show",
    "top_samples",
    "train",
]


def _executor(name: str | Any, options: dict[str, Any] | None):
    from .runner.executors import make_executor

    return make_executor(name, **(options or {})) if isinstance(name, str) else name


def run(config: Config | str | Path | None = None, on_event: EventCallback | None = None,
        tracking_uri: str | None = None, resume: str | None = None, executor: str | Any = "local",
        executor_options: dict[str, Any] | None = None, retry_failed: bool = False) -> RunResult:
    """Run an experiment (a Config, a dict of config sections, a TOML path or a preset name) or resume one by run id.

    Returns the run id, status, summary rows and artifact names. Ctrl-C ends the
    run KILLED and raises KeyboardInterrupt.
    """
    from .runner.runner import run_experiment

    if resume is None and isinstance(config, dict):
        config = config_from_dict(config, "engine.run")
    elif resume is None and not isinstance(config, Config):
        config = load_config(config)
    return run_experiment(config, tracking_uri=tracking_uri, on_event=on_event, resume=resume,
                          executor=_executor(executor, executor_options), retry_failed=retry_failed)


def launch_detached(config: Config | None, tracking_uri: str | None = None, resume: str | None = None,
                    executor: str = "local", executor_options: dict[str, Any] | None = None,
                    retry_failed: bool = False) -> dict[str, Any]:
    """Start an experiment in its own process session and return at once with its run id.

    The parent run is created here, so the id is known before the child starts;
    the child picks it up with `--resume`. Closing the terminal does not stop it.
    """
    from .runner.runner import check_resumable, create_parent_run, load_run_config
    from .store.process import process_start
    from .store.runlock import RunLock

    track = tracker(tracking_uri, os.getcwd())
    if resume is not None:  # a bad id, or a run still going, fails here rather than in the child's log
        if not resume.strip():
            raise UserError("--resume: the run id is empty; pass a run id from `prunelab runs`")
        resume = track.resolve(resume)
        load_run_config(resume, tracking_uri)
        RunLock(track.store.progress_file(resume), resume).acquire().release()
        check_resumable(track, resume)
    run_id = resume or create_parent_run(config, tracking_uri)
    progress = track.store.progress_file(run_id)
    progress.parent.mkdir(parents=True, exist_ok=True)
    log_path = progress.with_suffix(".log")
    cmd = [sys.executable, "-m", "engine.cli"]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    cmd += ["run", "--resume", run_id, "--executor", executor] + (["--retry-failed"] if retry_failed else [])
    for key, value in (executor_options or {}).items():  # e.g. address -> --ray-address
        if value is not None:
            cmd += [f"--ray-{key.replace('_', '-')}", str(value)]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=os.getcwd(), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # a first line at once, so a follower sees the run (and its pid) before the child writes its own
    name = config.name if config else track.get_run(run_id).data.tags.get(names.CONFIG_NAME, "")
    kind = config.kind if config else track.get_run(run_id).data.tags.get(names.KIND, "")
    with open(progress, "a", encoding="utf-8") as f:
        f.write(RunStarted(run_id=run_id, experiment=name, kind=kind, trials=0, pid=proc.pid,
                           tracking_uri=track.store.uri, pid_start=process_start(proc.pid)).to_json() + "\n")
    return {"run_id": run_id, "pid": proc.pid, "status": names.RUNNING, "progress_file": str(progress),
            "log_file": str(log_path), "tracking_uri": track.store.uri}


def list_runs(tracking_uri: str | None = None, status: str | None = None, kind: str | None = None):
    """Parent runs, newest first; a run whose process died is marked KILLED."""
    from .store.runs import list_runs as _list

    return _list(tracker(tracking_uri, os.getcwd()), status=status, kind=kind)


def _cache_dir(tracking_uri: str | None):
    return resolve_store(tracking_uri, os.getcwd()).cache_dir


def cache_usage(tracking_uri: str | None = None) -> dict[str, Any]:
    """The surrogate and score cache beside the store: its folder, and entries and bytes per kind."""
    from .store.cache import usage

    folder = _cache_dir(tracking_uri)
    kinds = [vars(k) for k in usage(folder)]
    return {"folder": str(folder), "kinds": kinds, "entries": sum(k["entries"] for k in kinds),
            "bytes": sum(k["bytes"] for k in kinds)}


def clear_cache(older_than_seconds: float = 0.0, kinds: Sequence[str] | None = None, dry_run: bool = False,
                tracking_uri: str | None = None) -> dict[str, Any]:
    """Delete cache entries unused for `older_than_seconds` (0: all), of some kinds or all; safe while runs go on."""
    from .store.cache import remove_unused

    folder = _cache_dir(tracking_uri)
    removed, freed = remove_unused(folder, older_than_seconds, list(kinds) if kinds else None, dry_run)
    return {"folder": str(folder), "removed": removed, "bytes": freed, "dry_run": dry_run}


def show(run_id: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """A run's status and summary rows (from summary.json, or folded from finished trials while it runs)."""
    from .store.runs import reconcile, run_summary

    track = tracker(tracking_uri, os.getcwd())
    run_id = track.resolve(run_id)
    run = track.get_run(run_id)
    experiment = track.client.get_experiment(run.info.experiment_id).name
    kind = run.data.tags.get(names.KIND, "")
    report = {"run_id": run_id, "experiment": experiment, "kind": kind,
              "status": reconcile(track, run), "summary": run_summary(track, run_id),
              "metrics": dict(run.data.metrics)}
    if kind in ("overlap", "study"):  # the methods x methods matrices of overlap.json, once it is written
        text = track.load_text(run_id, names.OVERLAP_JSON)
        report["overlap"] = json.loads(text) if text else None
    return report


def top_samples(run_id: str, method: str = "loss", epoch: int | None = None, n: int = 10, lowest: bool = False,
                tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """The n highest (or lowest) scored training samples of a scored run, highest first.

    Each is a dict: index, label (the one the scorers saw: noisy in a noise run),
    predicted (surrogate 0's prediction, None if the run did not log them), score and
    image (uint8, CHW). `epoch` defaults to the last surrogate epoch scored.
    """
    from .analysis import pick_samples
    from .data.dataset import load_dataset
    from .runner.runner import load_run_config

    track = tracker(tracking_uri, os.getcwd())
    run_id = track.resolve(run_id)
    config = load_run_config(run_id, tracking_uri)
    stored = [a.path.rsplit("/", 1)[-1][:-len(".npy")] for a in track.client.list_artifacts(run_id, names.SCORES_DIR)]
    epochs = {int(name.rpartition("@e")[2]) for name in stored if name.rpartition("@e")[0] == method}
    if not epochs:
        methods = sorted({name.rpartition("@e")[0] for name in stored} - {names.PREDICTIONS})
        raise UserError(f"run {run_id} has no scores of {method!r}; "
                        + (f"it has: {', '.join(methods)}" if methods else "it logged no scores (yet)"))
    epoch = max(epochs) if epoch is None else epoch
    if epoch not in epochs:
        raise UserError(f"run {run_id} has {method} scores at epoch(s) {', '.join(map(str, sorted(epochs)))}, "
                        f"not at epoch {epoch}")
    with tempfile.TemporaryDirectory() as tmp:
        scores = np.load(track.download(run_id, names.score_artifact(method, epoch), tmp))
        found = {name: track.download(run_id, path, tmp) for name, path in
                 (("predictions", names.predictions_artifact(epoch)), ("labels", names.NOISE_LABELS))}
        arrays = {name: np.load(path) for name, path in found.items() if path is not None}
    ds = load_dataset(config.data.dataset, config.data.data_dir, "cpu", config.data.train_size, config.data.test_size,
                      config.data.options)
    if len(scores) != len(ds):
        raise DataError(f"run {run_id} scored {len(scores)} samples but {config.data.dataset} now has {len(ds)}; "
                        "the data set changed since the run")
    labels = arrays.get("labels", ds.y_train.numpy())
    return pick_samples(scores, labels, ds.x_train, arrays.get("predictions"), n, lowest, ds.train_index)


def export_csv(run_id: str, tracking_uri: str | None = None, trials: bool = False) -> str:
    """The run's summary rows as CSV, or with `trials` one row per trial (its tags, status and final metrics)."""
    from .runner.runner import summary_to_csv
    from .store.runs import trial_rows

    if not trials:
        return summary_to_csv(show(run_id, tracking_uri)["summary"])
    track = tracker(tracking_uri, os.getcwd())
    run_id = track.resolve(run_id)
    track.get_run(run_id)  # not found: one line
    return summary_to_csv(trial_rows(track, run_id))


# ---------------------------------------------------------------- one step at a time (scripts)
# A data set argument is a registry name (or npz:PATH), an engine Dataset, or the
# user's own (x_train, y_train, x_test, y_test) arrays or tensors.
DatasetLike = Union[str, "Dataset", Sequence[Any]]


def as_dataset(dataset: DatasetLike = "mnist-mini", *, data_dir: str | Path | None = None, device: str = "auto",
               train_size: int | None = None, test_size: int | None = None,
               on_event: EventCallback | None = None) -> Dataset:
    """A Dataset on the compute device from a name, a Dataset or four arrays, so every step takes all three.
    `on_event` hears of an image folder's decoding."""
    from .data.dataset import Dataset, from_arrays, load_dataset
    from .device import resolve_device

    target = resolve_device(device)
    if isinstance(dataset, str):
        return load_dataset(dataset, data_dir, target, train_size, test_size, on_event=on_event)
    if isinstance(dataset, Dataset):
        ds = dataset
    elif isinstance(dataset, Sequence) and len(dataset) == 4:
        ds = from_arrays(*dataset)
    else:
        raise DataError(f"dataset: expected a name such as 'mnist-mini', an engine Dataset or "
                        f"(x_train, y_train, x_test, y_test), got {type(dataset).__name__}")
    if train_size is not None or test_size is not None:
        ds = ds.subset(train_size, test_size)
    return ds.to(target)


def _train_config(source: str, **options: Any) -> TrainConfig:
    try:
        return TrainConfig(**options)
    except ValidationError as exc:
        raise config_error(exc, source) from None


def train(dataset: DatasetLike = "mnist-mini", model: str | nn.Module = "cnn", *, epochs: int = 1, seed: int = 0,
          indices: Any = None, device: str = "auto", data_dir: str | Path | None = None,
          train_size: int | None = None, test_size: int | None = None, on_event: EventCallback | None = None,
          **options: Any) -> TrainResult:
    """Train one model (a registry name or your own nn.Module) on the data, or on the kept `indices` of it.

    `options` are TrainConfig fields (lr, batch_size, steps, schedule, ...), checked
    like a config file's [train] section. Returns the model, per-epoch history and
    test accuracy; same seed, same result on the CPU.
    """
    from .trainer import train as run_training

    cfg = _train_config("engine.train", epochs=epochs, **options)
    ds = as_dataset(dataset, data_dir=data_dir, device=device, train_size=train_size, test_size=test_size,
                    on_event=on_event)
    return run_training(model, ds, cfg, seed=seed, indices=_checked_indices(indices, len(ds)), on_event=on_event)


def _checked_indices(indices: Any, n: int) -> Any:
    """Kept indices must be integers in [0, n): a negative one would silently wrap, a float be truncated."""
    if indices is None:
        return None
    kept = np.asarray(indices.cpu() if hasattr(indices, "cpu") else indices)
    if kept.ndim != 1 or not (kept.size == 0 or np.issubdtype(kept.dtype, np.integer)):
        raise ConfigError(f"indices: expected a 1-d list of integer positions in the training set, "
                          f"got {kept.dtype} of shape {kept.shape}")
    if kept.size and (kept.min() < 0 or kept.max() >= n):
        raise ConfigError(f"indices: positions must lie in [0, {n}) for this training set of {n} samples; "
                          f"got {kept.min()} .. {kept.max()}")
    return indices


def score_result(dataset: DatasetLike = "mnist-mini", model: str = "cnn",
                 scorers: str | Sequence[str] = ("el2n",), *, epochs: int | Sequence[int] = 1,
                 inits: int = SurrogateConfig.model_fields["inits"].default,
                 seed: int = 0, surrogate_epochs: int | None = None, batch_size: int = 256, embeddings: bool = False,
                 cache: str | Path | Cache | None = None, device: str = "auto", data_dir: str | Path | None = None,
                 train_size: int | None = None, test_size: int | None = None, on_event: EventCallback | None = None,
                 train_batch_size: int | None = None, scorer_options: dict[str, dict[str, Any]] | None = None,
                 **options: Any) -> ScoreResult:
    """`score`, but the whole ScoreResult (predictions, timings, surrogates trained), for the CLI and reports.

    `batch_size` is the scoring batch; `train_batch_size` the surrogates' training batch;
    `scorer_options` each scorer's own options ({"tdds": {"window": 5}}, see `prunelab scorers`).
    """
    from .nets import check_model_name
    from .scoring.registry import check_scorer_options, resolve_scorers
    from .scoring.surrogate import compute_scores
    from .store.cache import Cache

    scorer_names = [s.name for s in resolve_scorers(scorers)]  # bad names fail before any data is read
    for name, table in (scorer_options or {}).items():
        check_scorer_options(name, table)
    check_model_name(model)
    at = [int(epochs)] if isinstance(epochs, int) else [int(e) for e in epochs]
    budget = max(at, default=0) if surrogate_epochs is None else surrogate_epochs
    if train_batch_size is not None:
        options["batch_size"] = train_batch_size
    cfg = _train_config("engine.score", epochs=budget, **options)
    ds = as_dataset(dataset, data_dir=data_dir, device=device, train_size=train_size, test_size=test_size,
                    on_event=on_event)
    return compute_scores(ds, model, scorer_names, epochs=at, inits=inits, train_cfg=cfg, seed=seed, on_event=on_event,
                          cache=cache if isinstance(cache, Cache) else Cache(cache), batch_size=batch_size,
                          embeddings=embeddings, options=scorer_options)


@overload
def score(dataset: DatasetLike = ..., model: str = ..., scorers: str | Sequence[str] = ..., *, epochs: int = ...,
          **kwargs: Any) -> dict[str, np.ndarray]: ...


@overload
def score(dataset: DatasetLike = ..., model: str = ..., scorers: str | Sequence[str] = ..., *,
          epochs: Sequence[int], **kwargs: Any) -> dict[str, dict[int, np.ndarray]]: ...


def score(dataset: DatasetLike = "mnist-mini", model: str = "cnn", scorers: str | Sequence[str] = ("el2n",), *,
          epochs: int | Sequence[int] = 1, embeddings: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Per-sample scores of the training data, from `inits` surrogates trained with `seed`.

    With `epochs` an int the result is `{scorer: array}`; with a list of epochs it is
    `{scorer: {epoch: array}}`. Arrays are aligned with the dataset's training
    indices. `embeddings=True` adds an `"embeddings"` entry, shaped like a scorer's,
    of (n, d) penultimate features (for `kmeans_coverage`). Keywords: inits (K, default
    1), seed, surrogate_epochs (default: the last score epoch), batch_size (scoring),
    cache (a folder: reuse surrogates and scores across calls, as `engine.run` does),
    device, data_dir, train_size, test_size, on_event, and TrainConfig fields for the
    surrogates' training.
    """
    result = score_result(dataset, model, scorers, epochs=epochs, embeddings=embeddings, **kwargs)
    out: dict[str, Any] = dict(result.scores)
    if embeddings:
        out["embeddings"] = result.embeddings
    return {k: v[result.epochs[0]] for k, v in out.items()} if isinstance(epochs, int) else out
