"""What a trial does, by name, so that a job names it and any process (a Ray worker too) can run it.

A task is `task(job, config, tracker, child_run_id, on_event, cancel) -> metrics`.
It logs what is its own to the child run; `worker.execute_trial` does the rest
(status, errors, events). `cancel` is the run's CancelToken (None where nobody can
cancel, as in a Ray worker, which Ray stops itself): the trainer polls it per batch.
Three tasks: `retrain` (from scratch on the kept samples, optionally on noisy labels,
optionally weighted), `online` (online batch selection) and `dynamic` (InfoBatch);
what each changes in training is a trainer hook (train_hooks.py).
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import names
from ..architectures import build_model
from ..cancel import CancelToken
from ..config import Config, TrainConfig
from ..data.dataset import Dataset, load_dataset
from ..data.noise import with_label_noise
from ..device import resolve_device
from ..scoring.batch import score_model
from ..scoring.registry import SCORERS
from ..selection.infobatch import InfoBatch
from ..store.events import EventCallback
from ..store.tracking import Tracker
from ..train_hooks import SampleWeights, TrainHook
from ..trainer import evaluate, train
from .trials import TrialJob

TrialTask = Callable[[TrialJob, Config, Tracker, str, "EventCallback | None", "CancelToken | None"], dict[str, float]]
TRIAL_TASKS: dict[str, TrialTask] = {}


def register_trial_task(name: str, task: TrialTask) -> TrialTask:
    TRIAL_TASKS[name] = task
    return task


def retrain_budget(config: Config, n_full: int) -> TrainConfig:
    """The retraining config: same epochs (default) or the same optimizer steps as on the full data."""
    if config.sweep.budget == "steps":
        steps = config.train.epochs * max(1, math.ceil(n_full / config.train.batch_size))
        return config.train.model_copy(update={"steps": steps})
    return config.train


def trial_dataset(config: Config) -> Dataset:
    """The run's data set, loaded (once per process) where the trial runs."""
    return load_dataset(config.data.dataset, config.data.data_dir, resolve_device(config.device),
                        config.data.train_size, config.data.test_size, config.data.options,
                        config.data.device_budget_mb)


# ---------------------------------------------------------------- retrain
def retrain(job: TrialJob, config: Config, track: Tracker, child: str, on_event: EventCallback | None,
            cancel: CancelToken | None = None) -> dict[str, float]:
    """Retrain from scratch on the kept subset and evaluate.

    With `job.options["noise"]` the labels are the run's noisy ones (`noise.fraction`,
    `noise.seed`), re-drawn here, and the child logs how many flipped samples it kept.
    """
    trial = job.trial
    ds = trial_dataset(config)
    cfg = retrain_budget(config, len(ds))
    kept = job.kept if job.kept is not None else np.arange(len(ds))
    params: dict[str, Any] = {**trial.tags(), "kept": len(kept), "train.steps": cfg.steps, "train.epochs": cfg.epochs}
    if (job.options or {}).get("noise"):
        ds, flipped = with_label_noise(ds, config.noise.fraction, config.noise.seed)
        params["flipped_kept"] = int(np.isin(flipped, kept).sum())
    track.log_dataset_input(child, ds, kept=len(kept))
    track.log_params(child, params)
    # a weighted coreset's loss, its weights scaled to mean 1 so the learning rate keeps its scale
    hooks = [] if job.weights is None else [SampleWeights(job.weights / job.weights.mean())]
    result = train(config.model, ds, cfg, seed=trial.seed, indices=kept, on_event=on_event, trial=job.index,
                   hooks=hooks, cancel=cancel)
    track.log_history(child, result.history)
    track.log_metrics(child, {"final_test_accuracy": result.test_accuracy, "train_seconds": result.train_seconds},
                      step=result.epochs)
    if trial.method != names.FULL:
        track.log_numpy(child, kept.astype(np.int64), names.KEPT_INDICES)
        if job.weights is not None:
            track.log_numpy(child, np.asarray(job.weights, dtype=np.float64), names.SELECTION_WEIGHTS)
    return {"test_accuracy": result.test_accuracy, "test_loss": result.test_loss,
            "train_seconds": result.train_seconds, "kept": float(len(kept)), "steps": float(result.steps)}


register_trial_task("retrain", retrain)


# ---------------------------------------------------------------- online batch selection
class TopK(TrainHook):
    """A trainer hook that selects within each drawn batch: score it with the current model, keep its k highest.

    A last, partial batch of b < B samples keeps round(k·b/B) (at least 1), the same fraction.
    Counts what it was shown (`drawn`) and what it kept (`kept`), as Python ints (no host sync).
    """

    def __init__(self, model: torch.nn.Module, dataset: Dataset, method: str, batch_size: int, keep: int, seed: int,
                 options: dict[str, dict[str, Any]] | None = None):
        self.model, self.dataset, self.method, self.options = model, dataset, method, options
        self.batch_size, self.keep = batch_size, keep
        self.generator = torch.Generator(device=dataset.device).manual_seed(seed)
        self.drawn = self.kept = 0

    def select(self, idx: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = len(y)
        k = self.keep if n == self.batch_size else max(1, round(self.keep * n / self.batch_size))
        if self.method == names.RANDOM:
            chosen = torch.randperm(n, device=x.device, generator=self.generator)[:k]
        else:  # one batch as a data set: scored exactly as the offline scorers score it
            batch = dataclasses.replace(self.dataset, x_train=x, y_train=y, train_index=None)
            scores = score_model(self.model, batch, [self.method], batch_size=n,
                                 options=self.options).scores[self.method]
            chosen = torch.topk(torch.from_numpy(scores), k).indices.to(x.device)
        self.drawn += n
        self.kept += k
        return chosen

    __call__ = select  # the `select_batch=` keyword of the trainer before hooks


class Curve(TrainHook):
    """A trainer hook that observes: test accuracy every `every` steps, against examples backpropagated and wall
    time."""

    def __init__(self, model: torch.nn.Module, dataset: Dataset, every: int, eval_batch_size: int, amp: bool):
        self.model, self.dataset, self.every = model, dataset, every
        self.eval_batch_size, self.amp = eval_batch_size, amp
        self.steps = self.backpropagated = 0
        self.eval_seconds = 0.0
        self.start = self.last = time.perf_counter()
        self.points: list[dict[str, float]] = []

    def wall(self) -> float:
        return self.last - self.start - self.eval_seconds

    def observe(self, idx: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.steps += 1
        self.backpropagated += len(y)
        self.last = time.perf_counter()
        if self.steps % self.every == 0:
            accuracy, loss = evaluate(self.model, self.dataset, "test", self.eval_batch_size, self.amp)
            self.eval_seconds += time.perf_counter() - self.last
            self.points.append({"step": self.steps, "backpropagated": self.backpropagated, "wall_seconds": self.wall(),
                                "test_accuracy": accuracy, "test_loss": loss})


def train_online(job: TrialJob, config: Config, track: Tracker, child: str, on_event: EventCallback | None,
                 cancel: CancelToken | None = None) -> dict[str, float]:
    """Train with top-k selection from each drawn batch (or whole batches for the full-batch reference)."""
    trial, ds, online = job.trial, trial_dataset(config), config.online
    cfg = config.train.model_copy(update={"batch_size": online.batch_size})
    model = build_model(config.model, ds.input_shape, ds.num_classes, seed=trial.seed).to(ds.device)
    selector = None if trial.method == names.FULL else TopK(model, ds, trial.method, online.batch_size, online.keep,
                                                            trial.seed, config.scorer_options([trial.method]))
    track.log_params(child, {**trial.tags(), "batch_size": online.batch_size,
                             "keep": online.batch_size if selector is None else online.keep})
    curve = Curve(model, ds, online.eval_every, cfg.eval_batch_size, cfg.amp)  # the clock starts here
    hooks = [curve] if selector is None else [selector, curve]
    result = train(model, ds, cfg, seed=trial.seed, on_event=on_event, hooks=hooks, trial=job.index,
                   evaluate_every_epoch=False, cancel=cancel)
    final = {"step": curve.steps, "backpropagated": curve.backpropagated, "wall_seconds": curve.wall(),
             "test_accuracy": result.test_accuracy, "test_loss": result.test_loss}
    if not curve.points or curve.points[-1]["step"] != curve.steps:
        curve.points.append(final)
    track.log_history(child, [{**p, "epoch": p["backpropagated"]} for p in curve.points])  # step = backprops
    drawn = selector.drawn if selector else curve.backpropagated
    track.log_metrics(child, {"final_test_accuracy": result.test_accuracy, "drawn": drawn}, step=curve.backpropagated)
    scorer = SCORERS[trial.method] if selector and trial.method != names.RANDOM else None  # what scoring cost
    forward = curve.backpropagated + (drawn if scorer else 0)
    backward = curve.backpropagated + (drawn if scorer and (scorer.needs_param_grads or scorer.needs_input_grad)
                                       else 0)
    return {"test_accuracy": result.test_accuracy, "test_loss": result.test_loss, "steps": float(curve.steps),
            "backpropagated": float(curve.backpropagated), "drawn": float(drawn), "wall_seconds": curve.wall(),
            "forward": float(forward), "backward": float(backward)}


register_trial_task("online", train_online)


# ---------------------------------------------------------------- dynamic pruning (InfoBatch)
def train_dynamic(job: TrialJob, config: Config, track: Tracker, child: str, on_event: EventCallback | None,
                  cancel: CancelToken | None = None) -> dict[str, float]:
    """Train with InfoBatch's per-epoch pruning (or on all data for the reference); counts passes and time."""
    trial, ds, dyn = job.trial, trial_dataset(config), config.dynamic
    pruner = None if trial.method == names.FULL else InfoBatch(
        len(ds), config.train.epochs, dyn.ratio, dyn.delta, dyn.score, seed=trial.seed, device=ds.device,
        options=config.scorer_options([dyn.score]).get(dyn.score), label_smoothing=config.train.label_smoothing)
    track.log_params(child, {**trial.tags(), "r": dyn.ratio if pruner else 0.0, "delta": dyn.delta,
                             "score": dyn.score})
    result = train(config.model, ds, config.train, seed=trial.seed, on_event=on_event, trial=job.index,
                   hooks=[pruner] if pruner else [], cancel=cancel)
    used = pruner.used if pruner else [len(ds)] * len(result.history)
    seen = np.cumsum(used)
    track.log_history(child, [{**h, "samples": float(u), "samples_seen": float(s)}
                              for h, u, s in zip(result.history, used, seen)])
    return {"test_accuracy": result.test_accuracy, "test_loss": result.test_loss, "samples": float(result.samples),
            "forward": float(result.samples), "backward": float(result.samples),
            "wall_seconds": result.train_seconds}


register_trial_task("dynamic", train_dynamic)
