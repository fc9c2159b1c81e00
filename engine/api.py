"""The engine's public API: what the CLI, the TUI and scripts call.

The CLI holds no logic of its own: every command is one call here, and the TUI
reads and acts through the functions under "Reading runs back" and "Runs under
way" (an import contract keeps it to this module, names, errors and config).
Importing this module loads neither numpy, pydantic, MLflow nor torch: each
function imports what it needs, so `prunelab config check` and the TUI's first
frame never wait for them.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, overload

from . import arguments as arg
from . import names
from .arguments import checked
from .errors import ConfigError, DataError, UserError
from .preview import CONFIRM_TRIALS, Preview
from .store.artifacts import split_score_name
from .store.events import EventCallback, RunStarted
from .store.live import RECENT_S, Curve, ProgressWatcher
from .store.progress import RunProgress
from .store.runs import EPOCH_METRICS, RunDetail, RunInfo, TrialRow
from .store.tracking import Store, Tracker, resolve_store, tracker

if TYPE_CHECKING:
    import numpy as np
    from torch import nn
    from torch.utils.data import Subset, WeightedRandomSampler

    from .config import Config, TrainConfig
    from .data.dataset import Dataset
    from .export import KeptSubset
    from .inspection import EmbeddingMap, RunInspector, SampleReport
    from .runner.trials import RunResult
    from .scoring.surrogate import ScoreResult
    from .store.cache import Cache
    from .trainer import TrainResult

__all__ = [
    "CONFIRM_TRIALS",
    "Curve",
    "Preview",
    "ProgressWatcher",
    "RunDetail",
    "RunInfo",
    "RunProgress",
    "Store",
    "TrialRow",
    "as_dataset",
    "benchmark_report",
    "cache_dir",
    "cache_usage",
    "cancel_run",
    "check_inputs",
    "clear_cache",
    "config_dataset",
    "embedding_map",
    "export_csv",
    "export_subset",
    "inspect",
    "keep_count",
    "kept_subset",
    "kind_sections",
    "launch_detached",
    "list_runs",
    "list_runs_quick",
    "live_curves",
    "load_config",
    "load_predictions",
    "load_scores",
    "locate_store",
    "open_store",
    "overlap_matrices",
    "overlap_report",
    "preview",
    "preview_run",
    "run",
    "run_dataset",
    "run_detail",
    "run_info",
    "sample_files",
    "sample_inspector",
    "sampler",
    "samples_seen_curves",
    "score",
    "score_names",
    "score_result",
    "show",
    "split_score_name",
    "subset",
    "subset_trials",
    "top_samples",
    "train",
    "trial_count",
    "trial_history",
    "watch_progress",
]


@checked(path_or_preset=arg.optional(arg.path))
def load_config(path_or_preset: str | Path | None = None,
                overrides: list[str] | dict[str, Any] | None = None) -> Config:
    """Load a TOML file or a preset by name, apply `key=value` overrides, and validate (engine.config.load_config)."""
    from .config import load_config as load

    return load(path_or_preset, overrides)


_OPENING = threading.Lock()  # one MLflow set-up per store, however many threads (the TUI's workers) ask at once


def _track(tracking_uri: str | None) -> Tracker:
    """The store's Tracker (MLflow loads on the first call); a relative path resolves against the working folder."""
    with _OPENING:
        return tracker(tracking_uri, os.getcwd())


def _executor(name: str | Any, options: dict[str, Any] | None):
    from .runner.executors import make_executor

    return make_executor(name, **(options or {})) if isinstance(name, str) else name


_RUN_ARGS = {"tracking_uri": arg.optional(arg.uri), "resume": arg.optional(arg.run_id_text), "executor": arg.executor,
             "executor_options": arg.optional(arg.mapping), "retry_failed": arg.flag, "allow_data_change": arg.flag}


@checked(config=arg.optional(arg.config), on_event=arg.optional(arg.callback), **_RUN_ARGS)
def run(config: Config | str | Path | None = None, on_event: EventCallback | None = None,
        tracking_uri: str | None = None, resume: str | None = None, executor: str | Any = "local",
        executor_options: dict[str, Any] | None = None, retry_failed: bool = False,
        allow_data_change: bool = False) -> RunResult:
    """Run an experiment (a Config, a dict of config sections, a TOML path or a preset name) or resume one by run id.

    Bad input raises before any run exists (the pre-run check, `check_inputs`). A resume
    compares the data set with the one the run trained on and refuses a changed one
    unless `allow_data_change` (the run is then tagged). Returns the run id, status,
    summary rows and artifact names. Ctrl-C ends the run KILLED and raises KeyboardInterrupt.
    """
    from .preflight import check_inputs as preflight
    from .runner.runner import run_experiment

    if resume is None:
        config = _as_config(config, "engine.run")
        preflight(config, fetch=True)
    return run_experiment(config, tracking_uri=tracking_uri, on_event=on_event, resume=resume,
                          executor=_executor(executor, executor_options), retry_failed=retry_failed,
                          allow_data_change=allow_data_change)


def _as_config(config: Config | dict[str, Any] | str | Path | None, source: str) -> Config:
    from .config import Config, config_from_dict

    if isinstance(config, dict):
        return config_from_dict(config, source)
    return config if isinstance(config, Config) else load_config(config)


def preview(config: Config | dict[str, Any] | str | Path | None = None, tracking_uri: str | None = None,
            measure: bool = True) -> Preview:
    """What a run of `config` would do and about how long it would take, without running it (engine/preview.py):
    trials, selections, surrogates to train (the store's cache consulted), scoring passes, and an estimate from
    this machine's measured throughput (measured once, about two seconds, then cached beside the store) and the
    store's recent overheads, with its basis in words. `measure=False` never trains: without a cached measurement
    the preview has no time. Loads the data set (and torch); creates no run."""
    from .preview import preview as make

    config = _as_config(config, "engine.preview")
    store = resolve_store(tracking_uri, os.getcwd())
    return make(config, store.cache_dir, store.progress_dir, measure=measure)


def preview_run(run_id: str, tracking_uri: str | None = None, measure: bool = False) -> Preview:
    """`preview` of a run's own config (its config.toml), as if it started now from an empty cache: the monitor's
    estimate before a trial has ended. By default nothing is measured (a cached measurement or no time)."""
    from .preview import preview as make
    from .runner.runner import load_run_config

    track = _track(tracking_uri)
    config = load_run_config(track.resolve(run_id), tracking_uri)
    store = resolve_store(tracking_uri, os.getcwd())
    return make(config, store.cache_dir, store.progress_dir, measure=measure, check_cache=False)


def trial_count(config: Config | dict[str, Any] | str | Path | None = None) -> int:
    """How many trials a run of `config` has (its kind's plan), before any data loads: what decides whether
    `prunelab run` and the TUI ask before launching (more than engine.preview.CONFIRM_TRIALS)."""
    from .preview import count_trials

    return count_trials(_as_config(config, "engine.trial_count"))


def kind_sections(kind: str) -> list[str]:
    """The registered config sections an experiment kind reads (`Config.read_sections`), in registry order; every
    section for a kind that may read any. Loads no torch (the TUI's form lays itself out with it)."""
    from .kinds import KINDS
    from .sections import SECTIONS

    read = KINDS.check(kind).sections
    return [name for name in SECTIONS if read is None or name in read]


def check_inputs(config: Config, fetch: bool = False) -> list[str]:
    """The pre-run check that `run`, `prunelab config check` and the TUI's form share: a UserError (one line)
    for what a run of `config` would refuse in its first seconds (damaged or missing data, a subset larger than
    the data set, an unknown timm/torchvision model, images too small for the model). Returns what it could not
    check yet (a data set not downloaded or an image folder not decoded, unless `fetch`)."""
    from .preflight import check_inputs as preflight

    return preflight(config, fetch=fetch).notes


@checked(config=arg.optional(arg.config), **_RUN_ARGS)
def launch_detached(config: Config | None, tracking_uri: str | None = None, resume: str | None = None,
                    executor: str = "local", executor_options: dict[str, Any] | None = None,
                    retry_failed: bool = False, allow_data_change: bool = False) -> dict[str, Any]:
    """Start an experiment in its own process session and return at once with its run id.

    The parent run is created here, so the id is known before the child starts;
    the child picks it up with `--resume`. Closing the terminal does not stop it.
    """
    from .preflight import check_inputs as preflight
    from .runner.runner import check_data_unchanged, check_resumable, create_parent_run, load_run_config
    from .store.process import process_start
    from .store.runlock import RunLock

    if resume is None:
        config = _as_config(config, "engine.launch_detached")
        preflight(config, fetch=True)  # bad input fails here, before the parent run exists
    track = _track(tracking_uri)
    if resume is not None:  # a bad id, a run still going or changed data fails here rather than in the child's log
        if not resume.strip():
            raise UserError("--resume: the run id is empty; pass a run id from `prunelab runs`")
        resume = track.resolve(resume)
        stored = load_run_config(resume, tracking_uri)
        RunLock(track.store.progress_file(resume), resume).acquire().release()
        check_resumable(track, resume)
        check_data_unchanged(track, resume, stored, allow_data_change)
    run_id = resume or create_parent_run(config, tracking_uri)
    progress = track.store.progress_file(run_id)
    progress.parent.mkdir(parents=True, exist_ok=True)
    log_path = progress.with_suffix(".log")
    cmd = [sys.executable, "-m", "engine.cli"]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    cmd += ["run", "--resume", run_id, "--executor", executor] + (["--retry-failed"] if retry_failed else [])
    cmd += ["--allow-data-change"] if allow_data_change else []
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


@checked(tracking_uri=arg.optional(arg.uri), status=arg.optional(arg.one_of(*names.STATUSES, case_sensitive=False)),
         kind=arg.optional(arg.text))
def list_runs(tracking_uri: str | None = None, status: str | None = None, kind: str | None = None):
    """Parent runs, newest first; a run whose process died is marked KILLED."""
    from .store.runs import list_runs as _list

    return _list(_track(tracking_uri), status=status, kind=kind)


# the cache's kinds of entry (engine/scoring/score_cache.py's folders), and the unfinished writes of killed processes
CACHE_KINDS = ("surrogate", "scores", "forgetting", "partial")


def _cache_dir(tracking_uri: str | None):
    return resolve_store(tracking_uri, os.getcwd()).cache_dir


def cache_dir(tracking_uri: str | None = None) -> Path:
    """The surrogate and score cache that `run` uses for this store (`./mlruns/cache` by default): give it to
    `score(cache=...)` and a script reuses the run's surrogates, and the run reuses the script's."""
    return _cache_dir(tracking_uri)


@checked(tracking_uri=arg.optional(arg.uri))
def cache_usage(tracking_uri: str | None = None) -> dict[str, Any]:
    """The surrogate and score cache beside the store: its folder, and entries and bytes per kind."""
    from .store.cache import usage

    folder = _cache_dir(tracking_uri)
    kinds = [vars(k) for k in usage(folder)]
    return {"folder": str(folder), "kinds": kinds, "entries": sum(k["entries"] for k in kinds),
            "bytes": sum(k["bytes"] for k in kinds)}


@checked(older_than_seconds=arg.number(0), kinds=arg.optional(arg.names(CACHE_KINDS, "cache kind")),
         dry_run=arg.flag, tracking_uri=arg.optional(arg.uri))
def clear_cache(older_than_seconds: float = 0.0, kinds: str | Sequence[str] | None = None, dry_run: bool = False,
                tracking_uri: str | None = None) -> dict[str, Any]:
    """Delete cache entries unused for `older_than_seconds` (0: all), of some kinds (one kind's name, or a list of
    surrogate, scores, forgetting, partial) or all; safe while runs go on. `partial` are the temporary files of
    writes that a killed process left behind."""
    from .store.cache import remove_unused

    folder = _cache_dir(tracking_uri)
    removed, freed = remove_unused(folder, older_than_seconds, kinds or None, dry_run)
    return {"folder": str(folder), "removed": removed, "bytes": freed, "dry_run": dry_run}


_READ = {"run_id": arg.run_id, "tracking_uri": arg.optional(arg.uri)}


@checked(**_READ)
def show(run_id: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """A run's status and summary rows (from summary.json, or folded from finished trials while it runs)."""
    from .store.artifacts import overlap_report
    from .store.runs import reconcile, run_summary

    track = _track(tracking_uri)
    run_id = track.resolve(run_id)
    run = track.get_run(run_id)
    experiment = track.client.get_experiment(run.info.experiment_id).name
    kind = run.data.tags.get(names.KIND, "")
    report = {"run_id": run_id, "experiment": experiment, "kind": kind,
              "status": reconcile(track, run), "summary": run_summary(track, run_id),
              "metrics": dict(run.data.metrics)}
    if kind in ("overlap", "study"):  # the methods x methods matrices of overlap.json, once it is written
        report["overlap"] = overlap_report(track, run_id)
    return report


@checked(method=arg.text, epoch=arg.optional(arg.integer(0)), n=arg.integer(1), lowest=arg.flag, **_READ)
def top_samples(run_id: str, method: str = "loss", epoch: int | None = None, n: int = 10, lowest: bool = False,
                tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """The n highest (or lowest) scored training samples of a scored run, highest first.

    Each is a dict: index, label (the one the scorers saw: noisy in a noise run) and
    class (its name), predicted and predicted_class (surrogate 0's prediction, None if
    the run did not log them), path (the image's file, for folder data; else None),
    score and image (uint8, CHW). `epoch` defaults to the last surrogate epoch scored.
    """
    from .analysis import pick_samples
    from .runner.runner import load_run_config
    from .store.artifacts import load_array, score_names, split_score_name

    track = _track(tracking_uri)
    run_id = track.resolve(run_id)
    config = load_run_config(run_id, tracking_uri)
    stored = [split_score_name(name) for name in score_names(track, run_id)]
    epochs = {e for m, e in stored if m == method and e is not None}
    if not epochs:
        methods = sorted({m for m, _ in stored})
        raise UserError(f"run {run_id} has no scores of {method!r}; "
                        + (f"it has: {', '.join(methods)}" if methods else "it logged no scores (yet)"))
    epoch = max(epochs) if epoch is None else epoch
    if epoch not in epochs:
        raise UserError(f"run {run_id} has {method} scores at epoch(s) {', '.join(map(str, sorted(epochs)))}, "
                        f"not at epoch {epoch}")
    ds = _dataset_of(config)
    scores = load_array(track, run_id, names.score_artifact(method, epoch))
    if len(scores) != len(ds):
        raise DataError(f"run {run_id} scored {len(scores)} samples but {config.data.dataset} now has {len(ds)}; "
                        "the data set changed since the run")
    labels = load_array(track, run_id, names.NOISE_LABELS)
    predictions = load_array(track, run_id, names.predictions_artifact(epoch))
    return pick_samples(scores, ds.y_train.numpy() if labels is None else labels, ds.x_train, predictions, n, lowest,
                        ds.train_index, list(ds.classes), _source_files(config))


@checked(trials=arg.flag, **_READ)
def export_csv(run_id: str, tracking_uri: str | None = None, trials: bool = False) -> str:
    """The run's summary rows as CSV, or with `trials` one row per trial (its tags, status and final metrics)."""
    from .runner.runner import summary_to_csv
    from .store.runs import trial_rows

    if not trials:
        return summary_to_csv(show(run_id, tracking_uri)["summary"])
    track = _track(tracking_uri)
    run_id = track.resolve(run_id)
    track.get_run(run_id)  # not found: one line
    return summary_to_csv(trial_rows(track, run_id))


# ---------------------------------------------------------------- results out: a trial's kept subset
# RUN is a parent run (a unique prefix) with `trial` naming one of its trials (its key or name, its run id, or
# KEY=VALUE pairs such as "method=loss,ratio=0.3,seed=0"; None when it has one pruning trial), or a trial's own id.
def subset_trials(run_id: str, tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """The finished trials of a run that kept a subset: key, name, run id, kept count and final accuracy."""
    from .export import trial_listing

    return trial_listing(_track(tracking_uri), run_id)


def kept_subset(run_id: str, trial: str | None = None, tracking_uri: str | None = None) -> KeptSubset:
    """What one trial kept: `indices` in the data set read whole (what torchvision's data set of it indexes),
    `positions` in the run's training set, labels, class names, a weighted coreset's `weights`, and for
    `folder:PATH` data each kept image's file (`paths`). `.write(path)` saves it as .npy, .csv or .txt."""
    from .export import kept_subset as kept
    from .runner.runner import load_run_config

    def dataset_of(parent: str):
        config = load_run_config(parent, tracking_uri)
        return config, _dataset_of(config)

    return kept(_track(tracking_uri), run_id, trial, dataset_of)


def export_subset(run_id: str, out: str | Path, trial: str | None = None,
                  tracking_uri: str | None = None) -> list[Path]:
    """Write a trial's kept subset to `out` (.npy: indices, and `<stem>.weights.npy` for a weighted coreset; .csv:
    index, label, class, weight, path; .txt: a path or index per line); returns the files written."""
    return kept_subset(run_id, trial, tracking_uri).write(out)


def subset(run_id: str, trial: str | None = None, dataset: Any = None, tracking_uri: str | None = None) -> Subset:
    """A `torch.utils.data.Subset` of what a trial kept, for your own training loop: of `dataset` (a torch data set
    of the run's data read whole, e.g. `torchvision.datasets.MNIST(train=True)`, or an `ImageFolder` of a
    `folder:PATH` run, matched by file), or by default of the run's own training images as (normalised float
    image, label) pairs. Its `.dataset` is the whole set, for `sampler`."""
    from .export import TrainingImages, torch_subset

    kept = kept_subset(run_id, trial, tracking_uri)
    return torch_subset(kept, dataset if dataset is not None else TrainingImages(run_dataset(kept.run_id,
                                                                                             tracking_uri)))


def sampler(run_id: str, trial: str | None = None, dataset: Any = None, num_samples: int | None = None,
            generator: Any = None, tracking_uri: str | None = None) -> WeightedRandomSampler:
    """A `WeightedRandomSampler` over the whole of `dataset` (default: the run's own training images, as `subset`)
    that draws only the kept samples, each in proportion to its weight (a weighted coreset's; else 1), with
    replacement, `len(kept)` per epoch: `DataLoader(data, sampler=engine.sampler(run))`."""
    from .export import TrainingImages, weighted_sampler

    kept = kept_subset(run_id, trial, tracking_uri)
    data = dataset if dataset is not None else TrainingImages(run_dataset(kept.run_id, tracking_uri))
    return weighted_sampler(kept, data, num_samples, generator)


# ---------------------------------------------------------------- reading runs back (the TUI, scripts)
# Each takes a run id (a parent's, or a trial's where it says so; a unique prefix where MLflow is read anyway) and
# the store's URI (None: ./mlruns), and returns the engine's own types. They block on MLflow and files, so the TUI
# calls them from thread workers; those under "runs under way" read only progress files and never load MLflow.
def locate_store(tracking_uri: str | None = None, workdir: str | Path | None = None) -> Store:
    """Where the store is (its URI made absolute, the folder of its progress files and cache), without loading
    MLflow; `workdir` (default: here) is where `./mlruns` and relative SQLite paths are."""
    return resolve_store(tracking_uri, workdir)


def open_store(tracking_uri: str | None = None) -> Store:
    """Load MLflow and open the store (a new SQLite store is created and set to WAL), so later reads do not wait."""
    return _track(tracking_uri).store


def list_runs_quick(tracking_uri: str | None = None) -> list[RunInfo] | None:
    """`list_runs`, read straight from a SQLite store's file without loading MLflow (the TUI's first table);
    None when the store is not SQLite or the file cannot be read that way: then ask `list_runs`.
    A run whose process died reads KILLED here but is marked so in the store only by `list_runs`."""
    from .store.sqlite_runs import list_runs_sqlite

    store = resolve_store(tracking_uri, os.getcwd())
    return list_runs_sqlite(store) if store.is_sqlite else None


@checked(**_READ)
def run_info(run_id: str, tracking_uri: str | None = None) -> RunInfo:
    """One parent run as `list_runs` lists it (status, trials done, headline accuracies, duration)."""
    from .store.runs import parent_run

    track = _track(tracking_uri)
    return parent_run(track, track.resolve(run_id))


@checked(**_READ)
def run_detail(run_id: str, tracking_uri: str | None = None) -> RunDetail:
    """A parent run with its summary rows (folded from the finished trials while it runs) and its trials."""
    from .store.runs import run_detail as detail

    track = _track(tracking_uri)
    return detail(track, track.resolve(run_id))


@checked(trial_run_id=arg.run_id, keys=arg.names(what="metric"), tracking_uri=arg.optional(arg.uri))
def trial_history(trial_run_id: str, keys: Sequence[str] = EPOCH_METRICS,
                  tracking_uri: str | None = None) -> dict[str, list[tuple[int, float]]]:
    """A finished trial's per-epoch metrics (a child run's id): {metric: [(epoch, value)]}, by epoch."""
    from .store.runs import metric_history

    return metric_history(_track(tracking_uri), trial_run_id, keys)


@checked(**_READ)
def samples_seen_curves(run_id: str, tracking_uri: str | None = None) -> dict[str, list[tuple[float, float]]]:
    """Test accuracy against samples seen, per method (full data included), the mean over seeds step by step:
    the dynamic kind's `samples_seen` per epoch, or the online kind's evaluation steps (examples trained on)."""
    from .store.runs import samples_seen_curves as curves

    track = _track(tracking_uri)
    return curves(track, track.resolve(run_id))


@checked(**_READ)
def score_names(run_id: str, tracking_uri: str | None = None) -> list[str]:
    """The per-sample score arrays a run logged, as "method@eEPOCH" (e.g. "el2n@e2"), sorted."""
    from .store.artifacts import score_names as logged

    track = _track(tracking_uri)
    return logged(track, track.resolve(run_id))


@checked(name=arg.text, **_READ)
def load_scores(run_id: str, name: str, tracking_uri: str | None = None) -> np.ndarray:
    """One logged score array ("method@eEPOCH", see `score_names`) as float64, aligned with the run's training set."""
    from .store.artifacts import load_scores as load

    track = _track(tracking_uri)
    return load(track, track.resolve(run_id), name)


@checked(epoch=arg.optional(arg.integer(0)), **_READ)
def load_predictions(run_id: str, epoch: int | None = None, tracking_uri: str | None = None) -> np.ndarray | None:
    """The surrogate's predicted label per training sample at a score epoch (the latest logged when that one is
    missing or None), or None when the run logged none."""
    from .store.artifacts import load_predictions as load

    track = _track(tracking_uri)
    return load(track, track.resolve(run_id), epoch)


@checked(**_READ)
def overlap_report(run_id: str, tracking_uri: str | None = None) -> dict[str, Any] | None:
    """An overlap run's overlap.json: methods, k, and the top-k ("first"), bottom-k ("last") repetition rates and
    Spearman's rho as methods x methods lists; None when the run logged none."""
    from .store.artifacts import overlap_report as report

    track = _track(tracking_uri)
    return report(track, track.resolve(run_id))


@checked(**_READ)
def benchmark_report(run_id: str, tracking_uri: str | None = None) -> dict[str, Any] | None:
    """A benchmark run's benchmark.json (rows, winners, average ranks, critical difference, Friedman, crossovers);
    None when the run logged none."""
    from .store.artifacts import benchmark_report as report

    track = _track(tracking_uri)
    return report(track, track.resolve(run_id))


@checked(scores=arg.mapping, k=arg.integer(1))
def overlap_matrices(scores: dict[str, np.ndarray], k: int) -> dict[str, Any]:
    """Methods x methods top-k ("first") and bottom-k ("last") repetition rates and Spearman's rho of score
    arrays, as the overlap kind computes them; k is clipped to [1, the shortest array's length]."""
    from .analysis import overlap_matrices as compute

    n = min(len(v) for v in scores.values())
    return compute(scores, max(1, min(int(k), n)))


def sample_inspector(run_id: str, tracking_uri: str | None = None) -> RunInspector:
    """A run's per-sample arrays read once (scores, predictions, embedding map, every trial's kept indices, the
    training images), for stepping through its samples: `.sample(index)` is `inspect`, `.embedding_map()` the map,
    `.kept_mask(trial_run_id)` a trial's selection, `.ranking(method)` the samples by a score."""
    from .inspection import RunInspector, load_run_samples
    from .runner.runner import load_run_config

    track = _track(tracking_uri)
    run_id = track.resolve(run_id)
    return RunInspector(load_run_samples(track, run_id, _dataset_of(load_run_config(run_id, tracking_uri))))


def inspect(run_id: str, index: int, k: int | None = None, tracking_uri: str | None = None) -> SampleReport:
    """One training sample of a run (its position in the run's training set): image, label and surrogate 0's
    prediction; every logged score with its percentile (a trajectory where several epochs were scored); its k
    nearest neighbours in embedding space (default: all the run logged, 10) with a flag when most carry another
    label; and whether each trial kept it. `prunelab show RUN --sample N` prints the same."""
    return sample_inspector(run_id, tracking_uri).sample(index, k)


def embedding_map(run_id: str, tracking_uri: str | None = None) -> EmbeddingMap | None:
    """A run's embedding map (2-D projection of surrogate 0's embeddings, with the labels the scorers saw), None
    when it logged none; `sample_inspector(run_id).kept_mask(trial)` marks a trial's kept samples on it."""
    return sample_inspector(run_id, tracking_uri).embedding_map()


@checked(**_READ)
def run_dataset(run_id: str, tracking_uri: str | None = None) -> Dataset:
    """The training and test data of a run as its config names them (subset sizes included), on the CPU: what its
    scores are aligned with."""
    from .runner.runner import load_run_config

    track = _track(tracking_uri)
    return _dataset_of(load_run_config(track.resolve(run_id), tracking_uri))


def config_dataset(config: Config, on_event: EventCallback | None = None) -> Dataset:
    """The data of a config exactly as `run` loads it (reader options, subset sizes, device and memory budget):
    what `prunelab score --config` scores, so its surrogates are the run's (the same cache entries)."""
    from .data.dataset import load_dataset
    from .device import resolve_device

    data = config.data
    return load_dataset(data.dataset, data.data_dir, resolve_device(config.device), data.train_size, data.test_size,
                        data.options, data.device_budget_mb, on_event)


def sample_files(run_id: str, tracking_uri: str | None = None) -> list[str] | None:
    """The image file of each training sample of a run (`folder:` data), aligned with its scores and with
    `run_dataset`; None for data not read from image files."""
    from .runner.runner import load_run_config

    track = _track(tracking_uri)
    config = load_run_config(track.resolve(run_id), tracking_uri)
    files = _source_files(config)
    if files is None:
        return None
    index = _dataset_of(config).train_index
    return files if index is None else [files[i] for i in index]


def _source_files(config: Config) -> list[str] | None:
    """The file of each training sample of the full folder (`folder:PATH`; unreadable images skipped as the data
    skips them), None for other data."""
    from .data.folders import train_files
    from .data.registry import FOLDER_PREFIX

    data = config.data
    if not data.dataset.startswith(FOLDER_PREFIX):
        return None
    return train_files(data.dataset[len(FOLDER_PREFIX):], **data.options)


def _dataset_of(config: Config) -> Dataset:
    from .data.dataset import load_dataset

    data = config.data
    return load_dataset(data.dataset, data.data_dir, "cpu", data.train_size, data.test_size, data.options)


# ---------------------------------------------------------------- runs under way
@checked(tracking_uri=arg.optional(arg.uri), recent_s=arg.number(0))
def watch_progress(tracking_uri: str | None = None, recent_s: float = RECENT_S) -> ProgressWatcher:
    """A follower of every progress file of the store: its `poll()` returns the live runs and those that ended
    within `recent_s` (RunProgress: stage, trial, epoch, batch, metrics, log), live ones first. Loads no MLflow."""
    return ProgressWatcher(resolve_store(tracking_uri, os.getcwd()).progress_dir, recent_s)


@checked(**_READ)
def live_curves(run_id: str, tracking_uri: str | None = None) -> dict[int, tuple[str, Curve]]:
    """Per-epoch metrics of a run's trials still training (its full id), from its progress file (MLflow has a
    trial's history only once it ends): {trial index: (trial name, [(epoch, {metric: value})])}."""
    from .store.live import live_curves as curves

    return curves(resolve_store(tracking_uri, os.getcwd()).progress_file(run_id))


def cancel_run(run: str | RunProgress, tracking_uri: str | None = None) -> str:
    """Cancel a run under way (its full id, or its RunProgress from `watch_progress`): SIGTERM to its process, which
    ends the run KILLED. Returns what happened, in words; a process on another host or already ended is not
    signalled."""
    from .store.live import cancel
    from .store.runs import progress_in

    progress = progress_in(resolve_store(tracking_uri, os.getcwd()), run) if isinstance(run, str) else run
    return cancel(progress) if progress is not None else f"run {run}: no progress file, so no process to cancel"


# ---------------------------------------------------------------- one step at a time (scripts)
# A data set argument is a registry name (or npz:PATH), an engine Dataset, or the
# user's own (x_train, y_train, x_test, y_test) arrays or tensors.
DatasetLike = Union[str, "Dataset", Sequence[Any]]


_DATA = {"data_dir": arg.optional(arg.path), "device": arg.text, "train_size": arg.optional(arg.integer(1)),
         "test_size": arg.optional(arg.integer(1)), "on_event": arg.optional(arg.callback)}


@checked(**_DATA)
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
    from pydantic import ValidationError

    from .config import TrainConfig, config_error

    try:
        return TrainConfig(**options)
    except ValidationError as exc:
        raise config_error(exc, source) from None


@checked(model=arg.model, epochs=arg.integer(0), seed=arg.seed, **_DATA)
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
    import numpy as np

    kept = np.asarray(indices.cpu() if hasattr(indices, "cpu") else indices)
    if kept.ndim != 1 or not (kept.size == 0 or np.issubdtype(kept.dtype, np.integer)):
        raise ConfigError(f"indices: expected a 1-d list of integer positions in the training set, "
                          f"got {kept.dtype} of shape {kept.shape}")
    if kept.size and (kept.min() < 0 or kept.max() >= n):
        raise ConfigError(f"indices: positions must lie in [0, {n}) for this training set of {n} samples; "
                          f"got {kept.min()} .. {kept.max()}")
    return indices


_SCORE = {"model": arg.text, "scorers": arg.names(what="scorer name"), "epochs": arg.epochs, "embeddings": arg.flag}


@checked(inits=arg.integer(1), seed=arg.seed, surrogate_epochs=arg.optional(arg.integer(0)),
         batch_size=arg.integer(1), cache=arg.optional(arg.cache), train_batch_size=arg.optional(arg.integer(1)),
         scorer_options=arg.optional(arg.mapping), **_SCORE, **_DATA)
def score_result(dataset: DatasetLike = "mnist-mini", model: str = "cnn",
                 scorers: str | Sequence[str] = ("el2n",), *, epochs: int | Sequence[int] = 1,
                 inits: int = 1,  # SurrogateConfig's, written out (config loads numpy); test_hostile holds them equal
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


@checked(**_SCORE)
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


@checked(keep_ratio=arg.number(0, low_open=True, maximum=1), n=arg.integer(0))
def keep_count(keep_ratio: float, n: int) -> int:
    """How many of n samples a selection keeps at `keep_ratio` in (0, 1]: round(keep_ratio * n), at least 1."""
    from .selection.base import keep_count as count

    return count(keep_ratio, n)
