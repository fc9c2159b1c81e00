"""Surrogate runs: train K surrogates, score the data at checkpoint epochs, cache everything.

`compute_scores` is a composition of four parts:
- the plan (plan.py): which surrogates k = 0..K−1, at which epochs, which scorers
  and training observers each needs. Scorers that average over initialisations
  (`el2n`, `forgetting`, ...) use all K surrogates, trained from seeds derived from
  `seed`; EL2N is the mean of the K single-model scores at epoch t (Paul et al.
  2021), forgetting the mean of the K runs' counts over epochs 1..t. Every other
  scorer, the predictions and the embeddings come from surrogate 0, whose seed is
  `seed` itself (so it is the model `prunelab train --seed` trains). When no
  requested scorer averages, only surrogate 0 is trained, whatever K is;
- the cache (score_cache.py): keys, loads and saves of states, scores and
  observers' values, so a repeated call trains nothing;
- `SurrogateRun.train_and_score(work)`: one surrogate, from the cache or trained
  with its observers as trainer hooks, scored at each checkpoint. Training stops
  right after the last checkpoint it is needed for (the checkpoint hook says
  STOP): the learning-rate schedule still follows the whole budget (`train_cfg`),
  so the model at epoch t is the same whether or not later epochs run;
- `Average`: the mean over K for averaged scorers, surrogate 0's values for the rest.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..architectures import build_model
from ..cancel import CancelToken
from ..config import TrainConfig
from ..data.dataset import Dataset
from ..errors import ConfigError
from ..registry import Ref
from ..store.cache import Cache
from ..store.events import EventCallback, StageStarted, emit
from ..train_hooks import STOP, Checkpoints, as_hook
from ..trainer import train
from .batch import score_model
from .external import file_scores
from .gradembed import DEFAULT_GRADIENT_MB
from .gradnorm.persample import DEFAULT_WORKSPACE_MB
from .plan import PassOptions, ScoringPlan, SurrogateWork, check_epochs, plan_scores, surrogate_seed
from .score_cache import ScoreCache, SurrogateCache

__all__ = ["PassOptions", "ScoreResult", "check_epochs", "compute_scores", "random_scores", "surrogate_seed"]


@dataclass
class ScoreResult:
    """Per-sample scores aligned with the data set's training indices, per scorer and epoch."""

    scores: dict[str, dict[int, np.ndarray]]  # scorer -> epoch -> (N,) float32
    labels: np.ndarray  # (N,) int64
    indices: np.ndarray  # (N,) positions in the source data (the subset's, when it is one)
    predictions: dict[int, np.ndarray]  # epoch -> argmax of surrogate 0
    embeddings: dict[int, np.ndarray] | None  # epoch -> (N, d) penultimate features of surrogate 0, when asked
    epochs: list[int]
    inits: int  # surrogates the averaged scorers used (1 when none averages)
    seed: int
    model: str
    dataset: str
    surrogates_trained: int = 0  # training runs this call made (0 when everything came from the cache)
    seconds: dict[str, float] = field(default_factory=dict)  # training, scoring, total
    gradients: dict[int, np.ndarray] | None = None  # epoch -> last-layer gradient embeddings of surrogate 0
    gradient_projection: str = "none"  # "gaussian:k" when they were projected to fit (gradembed.py)

    def get(self, scorer: str, epoch: int | None = None) -> np.ndarray:
        """The scores of `scorer` at `epoch` (default: the last score epoch)."""
        if scorer not in self.scores:
            raise ConfigError(f"scorer {scorer!r} was not computed; this result holds {', '.join(self.scores)}")
        epoch = self.epochs[-1] if epoch is None else epoch
        if epoch not in self.scores[scorer]:
            raise ConfigError(f"no scores at epoch {epoch}; this result holds epochs {self.epochs}")
        return self.scores[scorer][epoch]

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for an .npz: `<scorer>@e<t>`, `predictions@e<t>`, `embeddings@e<t>`, labels, indices."""
        out: dict[str, np.ndarray] = {}
        for name, per_epoch in self.scores.items():
            for epoch, values in per_epoch.items():
                out[f"{name}@e{epoch}"] = values
        for epoch, values in self.predictions.items():
            out[f"predictions@e{epoch}"] = values
        for epoch, values in (self.embeddings or {}).items():
            out[f"embeddings@e{epoch}"] = values
        out["labels"], out["indices"] = self.labels, self.indices
        return out


def random_scores(n: int, seed: int) -> np.ndarray:
    """The `random` baseline: uniform [0, 1) numbers from a generator seeded with `seed`."""
    return np.random.default_rng(seed).random(n).astype(np.float32)


def _load(obj):
    return obj.load() if isinstance(obj, Ref) else obj


Arrays = dict[int, dict[str, np.ndarray]]  # epoch -> name -> array: what one surrogate gives


class SurrogateRun:
    """Trains (or loads) and scores the plan's surrogates one at a time; counts training runs and times them."""

    def __init__(self, plan: ScoringPlan, dataset: Dataset, cache: ScoreCache, on_event: EventCallback | None,
                 cancel: CancelToken | None):
        self.plan, self.dataset, self.cache, self.on_event, self.cancel = plan, dataset, cache, on_event, cancel
        self.timing = {"training": 0.0, "scoring": 0.0}
        self.trained = 0

    def train_and_score(self, work: SurrogateWork) -> Arrays:
        """Everything surrogate `work.k` gives (scores, observers' values, predictions, extras) per epoch: from
        the cache, rescored from cached states, or trained and scored at its checkpoints."""
        store = self.cache.surrogate(work)
        got = store.load()
        missing_scores = [t for t in work.passes if "predictions" not in got.get(t, {})]
        missing_observed = [t for t in self.plan.all_epochs
                            if any(s.name not in got.get(t, {}) for s in work.observed_at[t])]
        states = {t: store.load_state(t) for t in missing_scores}
        if missing_observed or any(state is None for state in states.values()):
            self._train(work, store, got, missing_scores, missing_observed)
            return got
        plan, ds = self.plan, self.dataset
        for t in missing_scores:
            model = build_model(plan.model, ds.input_shape, ds.num_classes, seed=work.seed)
            model.load_state_dict(states[t])
            self.score(work, store, got, t, model.to(ds.device))
        return got

    def _train(self, work: SurrogateWork, store: SurrogateCache, got: Arrays, missing_scores: list[int],
               missing_observed: list[int]) -> None:
        plan, ds = self.plan, self.dataset
        emit(self.on_event, StageStarted("surrogate", detail=f"{plan.model} {work.k + 1}/{plan.inits}, "
                                                             f"seed {work.seed}"))
        counters = {s.name: _load(s.observer)(len(ds), ds.device, **plan.options[s.name]) for s in work.observed}
        needed = sorted(set(missing_scores) | set(missing_observed))
        at_checkpoint = _AtCheckpoint(self, work, store, got, counters, missing_scores, missing_observed, needed[-1])
        hooks = [*(as_hook(c) for c in counters.values()), Checkpoints(needed, at_checkpoint)]
        t0, scoring_before = time.perf_counter(), self.timing["scoring"]
        train(plan.model, ds, plan.train_cfg, seed=work.seed, on_event=self.on_event, hooks=hooks,
              evaluate_every_epoch=False, evaluate_at_end=False, cancel=self.cancel)
        self.trained += 1
        self.timing["training"] += time.perf_counter() - t0 - (self.timing["scoring"] - scoring_before)

    def score(self, work: SurrogateWork, store: SurrogateCache, got: Arrays, t: int, model: torch.nn.Module) -> None:
        """One scoring pass of the surrogate at epoch t (and its embedding scorers after it), saved and kept."""
        plan, ds, extras = self.plan, self.dataset, self.plan.extras
        emit(self.on_event, StageStarted("scoring", detail=f"epoch {t}, surrogate {work.k + 1}/{plan.inits}"))
        t0 = time.perf_counter()
        mine, ours = work.scored_at[t], t in work.extras_at
        from_embeddings = [s for s in mine if s.kind == "embedding"]
        result = score_model(model, ds, [s for s in mine if s.kind == "batch"], batch_size=extras.batch_size,
                             embeddings=(extras.embeddings and ours) or bool(from_embeddings), on_event=self.on_event,
                             workspace_mb=extras.workspace_mb, epoch=t, epochs=plan.all_epochs[-1],
                             gradients=extras.gradients and ours, gradient_dtype=extras.gradient_dtype,
                             gradient_mb=extras.gradient_mb, options=plan.options, cancel=self.cancel)
        labels = ds.y_train.cpu().numpy()
        for s in from_embeddings:
            t1 = time.perf_counter()
            result.scores[s.name] = _load(s.fn)(model, result.embeddings, labels, **plan.options[s.name])
            self.timing[f"scorer:{s.name}"] = self.timing.get(f"scorer:{s.name}", 0.0) + time.perf_counter() - t1
        self.timing["scoring"] += time.perf_counter() - t0
        arrays = {name: v.astype(np.float32) for name, v in result.scores.items()}
        arrays["predictions"] = result.predictions
        if result.embeddings is not None and extras.embeddings and ours:
            arrays["embeddings"] = result.embeddings.astype(np.float32)
        if result.gradients is not None:
            arrays["gradients"] = result.gradients
            arrays["gradient_projection"] = np.array(result.gradient_projection)
        store.save_scores(t, arrays)
        got.setdefault(t, {}).update(arrays)


@dataclass
class _AtCheckpoint:
    """The surrogate's checkpoint callback: save the state and the observers' values, score, stop after the last."""

    run: SurrogateRun
    work: SurrogateWork
    store: SurrogateCache
    got: Arrays
    counters: dict[str, Any]
    missing_scores: list[int]
    missing_observed: list[int]
    last: int

    def __call__(self, t: int, model: torch.nn.Module) -> str | None:
        self.store.save_state(t, model.state_dict())
        for s in self.work.observed_at[t] if t in self.missing_observed else ():
            n = len(self.run.dataset)
            values = (self.counters[s.name].scores() if t > 0 else np.zeros(n)).astype(np.float32)
            self.store.save_observed(s, t, values)
            self.got.setdefault(t, {})[s.name] = values
        if t in self.missing_scores:
            self.run.score(self.work, self.store, self.got, t, model)
        return STOP if t == self.last else None


class Average:
    """The result over the surrogates: the mean over K for averaged scorers, surrogate 0's values for the rest."""

    def __init__(self, plan: ScoringPlan):
        self.plan = plan
        self.scores: dict[str, dict[int, np.ndarray]] = {s.name: {} for s in plan.scorers}
        self.sums: dict[str, dict[int, np.ndarray]] = {s.name: {} for s in plan.scorers if s.average_inits}
        self.predictions: dict[int, np.ndarray] = {}
        self.embeddings: dict[int, np.ndarray] = {}
        self.gradients: dict[int, np.ndarray] = {}
        self.projection = "none"

    def add(self, work: SurrogateWork, got: Arrays) -> None:
        for t in self.plan.all_epochs:
            arrays = got.get(t, {})
            for s in work.scorers:
                if s.kind == "random" or s.name not in arrays or t not in self.plan.at[s.name]:
                    continue
                if s.average_inits:
                    self.sums[s.name][t] = self.sums[s.name].get(t, 0) + arrays[s.name].astype(np.float64)
                else:
                    self.scores[s.name][t] = arrays[s.name]
            if t in work.extras_at:
                self.predictions[t] = arrays["predictions"]
                if "embeddings" in arrays:
                    self.embeddings[t] = arrays["embeddings"]
                if "gradients" in arrays:
                    self.gradients[t] = arrays["gradients"]
                    self.projection = str(arrays["gradient_projection"])

    def scores_by_epoch(self, n: int, dataset: Dataset | None = None) -> dict[str, dict[int, np.ndarray]]:
        """Scorer -> run epoch -> array: means taken, random drawn, a file's values read, a fixed epoch's values at
        every run epoch."""
        plan, scores = self.plan, self.scores
        for name, per_epoch in self.sums.items():
            for t, total in per_epoch.items():
                scores[name][t] = (total / plan.k_of[name]).astype(np.float32)
        for s in plan.scorers:
            if s.kind == "random":
                scores[s.name] = dict.fromkeys(plan.epochs, random_scores(n, plan.seed))
            elif s.kind == "file" and dataset is not None:
                scores[s.name] = dict.fromkeys(plan.epochs, file_scores(s, dataset))
            elif plan.at[s.name] != plan.epochs:  # a fixed epoch: its values stand for every epoch of the run
                scores[s.name] = dict.fromkeys(plan.epochs, scores[s.name][plan.at[s.name][0]])
        return scores

    def result(self, dataset: Dataset, run: SurrogateRun, start: float) -> ScoreResult:
        plan, extras = self.plan, self.plan.extras
        index = dataset.train_index if dataset.train_index is not None else np.arange(len(dataset))
        scores = self.scores_by_epoch(len(dataset), dataset)
        timing = {**run.timing, "total": time.perf_counter() - start}
        return ScoreResult(scores=scores, labels=dataset.y_train.cpu().numpy(), indices=np.asarray(index),
                           predictions=self.predictions, embeddings=self.embeddings if extras.embeddings else None,
                           epochs=plan.epochs, inits=max(1, plan.inits), seed=plan.seed, model=plan.model,
                           dataset=dataset.name, surrogates_trained=run.trained, seconds=timing,
                           gradients=self.gradients if extras.gradients else None, gradient_projection=self.projection)


def compute_scores(dataset: Dataset, model_name: str, scorers: Sequence[str] | str,
                   epochs: Sequence[int] | None = None, inits: int = 10, train_cfg: TrainConfig | None = None,
                   seed: int = 0, on_event: EventCallback | None = None, cache: Cache | None = None,
                   batch_size: int = 256, embeddings: bool = False,
                   workspace_mb: float = DEFAULT_WORKSPACE_MB, gradients: bool = False,
                   gradient_dtype: str = "float32", gradient_mb: float = DEFAULT_GRADIENT_MB,
                   options: dict[str, dict[str, Any]] | None = None, *,
                   cancel: CancelToken | None = None) -> ScoreResult:
    """Train the surrogates, score every training sample at each epoch in `epochs`, return the arrays.

    `train_cfg` is the surrogates' training (its budget must reach the last score
    epoch; default: TrainConfig with epochs = max(epochs)). `inits` is K, the number
    of surrogates that averaged scorers use (default 10, per Paul et al. 2021).
    `options` maps a scorer to its options (registry `Scorer.options`): a scorer's
    `inits` overrides K for it (surrogates 0..K−1, shared with the other scorers), its
    `epoch` fixes the surrogate epoch it is taken at (the result holds those values
    under every epoch of `epochs`); the rest go to its observer or function as keywords.
    `batch_size` is the scoring batch (it does not change the scores). Progress goes
    to `on_event`: StageStarted("surrogate"/"scoring"), BatchProgress, EpochEnd.
    `cancel` is polled per batch of training and scoring.
    """
    start = time.perf_counter()
    extras = PassOptions(batch_size, workspace_mb, embeddings, gradients, gradient_dtype, gradient_mb)
    plan = plan_scores(len(dataset), model_name, scorers, epochs, inits, train_cfg, seed, options, extras)
    run = SurrogateRun(plan, dataset, ScoreCache(cache or Cache(None), dataset, plan), on_event, cancel)
    average = Average(plan)
    for work in plan.surrogates:
        average.add(work, run.train_and_score(work))
    return average.result(dataset, run, start)
