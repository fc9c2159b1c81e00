"""Surrogate runs: train K surrogates, score the data at checkpoint epochs, cache everything.

Which surrogate a score comes from:
- scorers that average over initialisations (`el2n`, `forgetting`) use all K
  surrogates, trained from seeds derived from `seed`; EL2N is the mean of the K
  single-model scores at epoch t (Paul et al. 2021), forgetting the mean of the
  K runs' counts over epochs 1..t;
- every other scorer, the predictions and the embeddings come from surrogate 0,
  whose seed is `seed` itself (so it is the model `prunelab train --seed` trains).
When no requested scorer averages, only surrogate 0 is trained, whatever K is.

Caching (engine/cache.py): the surrogate's state at each checkpoint, its forgetting
counts and its score arrays are stored under keys hashed from the data (content
digest, name, subset), the model, the training config, the surrogate's seed, the
epoch and (for scores) the scorer set. A repeated call loads them and trains
nothing; a call with new scorers loads the cached states and only rescores.

Training stops right after the last checkpoint it is needed for: the learning-rate
schedule still follows the whole budget (`train_cfg`), so the model at epoch t is
the same whether or not later epochs run.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..architectures import build_model
from ..config import TrainConfig
from ..data.dataset import Dataset
from ..errors import ConfigError
from ..nets import MODELS, check_model_name
from ..registry import Ref
from ..store.cache import Cache, cache_key, code_digest
from ..store.events import EventCallback, StageStarted, emit
from ..trainer import plan_budget, train
from .batch import score_model
from .gradembed import DEFAULT_GRADIENT_MB
from .gradnorm.persample import DEFAULT_WORKSPACE_MB
from .registry import SURROGATE_OPTIONS, Scorer, resolve_scorers


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


def surrogate_seed(seed: int, init: int) -> int:
    """Seed of surrogate `init`: `seed` itself for 0, else a hash of (seed, init) so sweeps never share one."""
    if init == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, init]).generate_state(1)[0] >> 1)


def random_scores(n: int, seed: int) -> np.ndarray:
    """The `random` baseline: uniform [0, 1) numbers from a generator seeded with `seed`."""
    return np.random.default_rng(seed).random(n).astype(np.float32)


class _StopTraining(Exception):
    """Raised from a checkpoint callback once the last needed checkpoint is scored."""


def _fingerprint(s: Scorer, options: dict[str, Any] | None = None) -> str:
    fn = s.fn.load() if isinstance(s.fn, Ref) else s.fn
    where = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}" if fn is not None else ""
    mark = f"{s.name}:{where}:{s.version}:{code_digest(fn)}"  # changed code under the same name: a new key
    return mark + (f":{json.dumps(options, sort_keys=True)}" if options else "")  # other options: another key


def _load(obj):
    return obj.load() if isinstance(obj, Ref) else obj


def _observer_key(base: dict, s: Scorer, t: int, options: dict[str, Any]) -> str:
    """Cache key of a training scorer's values at epoch t: its observer's code and options (forgetting keeps
    its original key)."""
    if s.name == "forgetting":
        return cache_key(**base, epoch=t, what="forgetting")
    return cache_key(**base, epoch=t, what="observer", scorer=s.name, version=s.version, options=options,
                     code=code_digest(s.observer, whole_module=True))


def check_epochs(epochs: Iterable[int], budget_epochs: int) -> list[int]:
    """Sorted distinct score epochs, each within 0..budget_epochs, or ConfigError."""
    out = sorted({int(e) for e in epochs})
    if not out:
        raise ConfigError("no score epoch given; name at least one, e.g. epochs=[1] (0 scores the untrained model)")
    if out[0] < 0:
        raise ConfigError(f"score epoch {out[0]} is negative; use 0 (at initialisation) or later")
    if out[-1] > budget_epochs:
        raise ConfigError(f"score epoch {out[-1]} is beyond the surrogate's training budget of {budget_epochs} "
                          f"epoch(s); lower the score epoch or raise the surrogate's epochs")
    return out


def compute_scores(dataset: Dataset, model_name: str, scorers: Sequence[str] | str,
                   epochs: Sequence[int] | None = None, inits: int = 10, train_cfg: TrainConfig | None = None,
                   seed: int = 0, on_event: EventCallback | None = None, cache: Cache | None = None,
                   batch_size: int = 256, embeddings: bool = False,
                   workspace_mb: float = DEFAULT_WORKSPACE_MB, gradients: bool = False,
                   gradient_dtype: str = "float32", gradient_mb: float = DEFAULT_GRADIENT_MB,
                   options: dict[str, dict[str, Any]] | None = None) -> ScoreResult:
    """Train the surrogates, score every training sample at each epoch in `epochs`, return the arrays.

    `train_cfg` is the surrogates' training (its budget must reach the last score
    epoch; default: TrainConfig with epochs = max(epochs)). `inits` is K, the number
    of surrogates that averaged scorers use (default 10, per Paul et al. 2021).
    `options` maps a scorer to its options (registry `Scorer.options`): a scorer's
    `inits` overrides K for it (surrogates 0..K−1, shared with the other scorers), its
    `epoch` fixes the surrogate epoch it is taken at (the result holds those values
    under every epoch of `epochs`); the rest go to its observer or function.
    `batch_size` is the scoring batch (it does not change the scores). Progress goes
    to `on_event`: StageStarted("surrogate"/"scoring"), BatchProgress, EpochEnd.
    """
    start = time.perf_counter()
    chosen = resolve_scorers(scorers)
    if isinstance(inits, bool) or not isinstance(inits, (int, np.integer)) or inits < 1:
        raise ConfigError(f"inits (K, the number of surrogates) is {inits!r}; it must be an integer of at least 1")
    resolved = {s.name: s.resolve((options or {}).get(s.name)) for s in chosen}
    fn_opts = {name: {k: v for k, v in o.items() if k not in SURROGATE_OPTIONS} for name, o in resolved.items()}
    check_model_name(model_name)
    if train_cfg is None:
        train_cfg = TrainConfig(epochs=max(epochs) if epochs else 1)
    budget = plan_budget(train_cfg, len(dataset))
    epochs = check_epochs(epochs if epochs is not None else [budget.epochs], budget.epochs)
    at: dict[str, list[int]] = {}  # scorer -> the epochs it is computed at
    for s in chosen:
        fixed = resolved[s.name].get("epoch")
        if fixed is not None and fixed > budget.epochs:
            raise ConfigError(f"scoring.{s.name}.epoch = {fixed} is beyond the surrogate's training budget of "
                              f"{budget.epochs} epoch(s); raise the surrogate's epochs or lower it")
        at[s.name] = epochs if fixed is None else [int(fixed)]
    all_epochs = sorted({t for ts in at.values() for t in ts} | set(epochs))
    cache = cache or Cache(None)

    batch_scorers = [s for s in chosen if s.kind in ("batch", "embedding")]  # embedding: after surrogate 0's pass
    training_scorers = [s for s in chosen if s.kind == "training"]
    needs_model = any(s.needs_surrogate for s in chosen) or embeddings or gradients
    k_of = {s.name: int(resolved[s.name].get("inits") or inits) if s.average_inits else 1 for s in chosen}
    k_total = max(k_of.values(), default=1) if needs_model else 0
    n = len(dataset)
    scores: dict[str, dict[int, np.ndarray]] = {s.name: {} for s in chosen}
    sums: dict[str, dict[int, np.ndarray]] = {s.name: {} for s in chosen if s.average_inits}
    predictions: dict[int, np.ndarray] = {}
    emb: dict[int, np.ndarray] = {}
    grads: dict[int, np.ndarray] = {}
    projection = {"value": "none"}
    timing = {"training": 0.0, "scoring": 0.0}
    trained = 0
    digest = dataset.digest() if cache.enabled else ""
    index = dataset.train_index if dataset.train_index is not None else np.arange(n)

    for k in range(k_total):
        init_seed = surrogate_seed(seed, k)
        ours = [s for s in chosen if k < k_of[s.name]]  # surrogate 0 serves every scorer, k > 0 the averaged ones
        mine_at = {t: [s for s in batch_scorers if s in ours and t in at[s.name]] for t in all_epochs}
        observed = [s for s in training_scorers if s in ours]
        observed_at = {t: [s for s in observed if t in at[s.name]] for t in all_epochs}

        def extras_at(t: int) -> bool:  # predictions (and embeddings) come from surrogate 0, at the run's epochs
            return k == 0 and t in epochs

        def wants_pass(t: int) -> bool:
            return bool(mine_at[t]) or extras_at(t)

        if not any(wants_pass(t) or observed_at[t] for t in all_epochs):
            continue
        base = {"dataset": dataset.name, "digest": digest, "subset": index, "model": model_name, "train": train_cfg,
                    "seed": init_seed, "model_code": code_digest(MODELS.get(model_name), whole_module=True)}
        score_keys = {t: cache_key(**base, epoch=t, what="scores",
                                   scorers=[_fingerprint(s, fn_opts[s.name]) for s in mine_at[t]],
                                   extras=extras_at(t), embeddings=embeddings and extras_at(t),
                                   **({"gradients": [gradient_dtype, gradient_mb]} if gradients and extras_at(t)
                                      else {}))
                      for t in all_epochs if wants_pass(t)}
        forget_keys = {(s.name, t): _observer_key(base, s, t, fn_opts[s.name])
                       for t in all_epochs for s in observed_at[t]}
        state_keys = {t: cache_key(**base, epoch=t, what="state") for t in all_epochs}
        got: dict[int, dict[str, np.ndarray]] = {}
        # an entry without one of these is a miss (a damaged or foreign file), not a KeyError below
        for t in all_epochs:
            needed = ("predictions", *(s.name for s in mine_at[t]),
                      *(("embeddings",) if embeddings and extras_at(t) else ()))
            arrays = cache.load_arrays("scores", score_keys[t], require=needed) if t in score_keys else None
            if arrays is not None:
                got[t] = arrays
            for s in observed_at[t]:
                counts = cache.load_arrays("forgetting", forget_keys[s.name, t], require=(s.name,))
                if counts is not None:
                    got.setdefault(t, {})[s.name] = counts[s.name]
        missing_scores = [t for t in all_epochs if wants_pass(t) and "predictions" not in got.get(t, {})]
        missing_forget = [t for t in all_epochs if any(s.name not in got.get(t, {}) for s in observed_at[t])]

        def score_now(t: int, model: torch.nn.Module) -> None:
            emit(on_event, StageStarted("scoring", detail=f"epoch {t}, surrogate {k + 1}/{k_total}"))
            t0 = time.perf_counter()
            mine, extras = mine_at[t], extras_at(t)
            from_embeddings = [s for s in mine if s.kind == "embedding"]
            result = score_model(model, dataset, [s for s in mine if s.kind == "batch"], batch_size=batch_size,
                                 embeddings=(embeddings and extras) or bool(from_embeddings), on_event=on_event,
                                 workspace_mb=workspace_mb, epoch=t, epochs=all_epochs[-1],
                                 gradients=gradients and extras, gradient_dtype=gradient_dtype,
                                 gradient_mb=gradient_mb)
            labels = dataset.y_train.cpu().numpy()
            for s in from_embeddings:
                t1 = time.perf_counter()
                result.scores[s.name] = _load(s.fn)(model, result.embeddings, labels, **fn_opts[s.name])
                timing[f"scorer:{s.name}"] = timing.get(f"scorer:{s.name}", 0.0) + time.perf_counter() - t1
            timing["scoring"] += time.perf_counter() - t0
            arrays = {name: v.astype(np.float32) for name, v in result.scores.items()}
            arrays["predictions"] = result.predictions
            if result.embeddings is not None and embeddings and extras:
                arrays["embeddings"] = result.embeddings.astype(np.float32)
            if result.gradients is not None:
                arrays["gradients"] = result.gradients
                arrays["gradient_projection"] = np.array(result.gradient_projection)
            cache.save_arrays("scores", score_keys[t], arrays)
            got.setdefault(t, {}).update(arrays)

        states = {t: cache.load_state("surrogate", state_keys[t]) for t in missing_scores}
        if missing_forget or any(state is None for state in states.values()):
            emit(on_event, StageStarted("surrogate", detail=f"{model_name} {k + 1}/{k_total}, seed {init_seed}"))
            counters = {s.name: _load(s.observer)(n, dataset.device, **fn_opts[s.name]) for s in observed}
            needed = sorted(set(missing_scores) | set(missing_forget))

            def on_checkpoint(t: int, model: torch.nn.Module) -> None:
                cache.save_state("surrogate", state_keys[t], model.state_dict())
                for s in observed_at[t] if t in missing_forget else ():
                    counts = (counters[s.name].scores() if t > 0 else np.zeros(n)).astype(np.float32)
                    cache.save_arrays("forgetting", forget_keys[s.name, t], {s.name: counts})
                    got.setdefault(t, {})[s.name] = counts
                if t in missing_scores:
                    score_now(t, model)
                if t == needed[-1]:
                    raise _StopTraining

            t0, scoring_before = time.perf_counter(), timing["scoring"]
            try:
                train(model_name, dataset, train_cfg, seed=init_seed, on_event=on_event, checkpoint_epochs=needed,
                      on_checkpoint=on_checkpoint, observers=list(counters.values()),
                      evaluate_every_epoch=False, evaluate_at_end=False)
            except _StopTraining:
                pass
            trained += 1
            timing["training"] += time.perf_counter() - t0 - (timing["scoring"] - scoring_before)
        else:
            for t in missing_scores:
                model = build_model(model_name, dataset.input_shape, dataset.num_classes, seed=init_seed)
                model.load_state_dict(states[t])
                score_now(t, model.to(dataset.device))

        for t in all_epochs:
            arrays = got.get(t, {})
            for s in ours:
                if s.kind == "random" or s.name not in arrays or t not in at[s.name]:
                    continue
                if s.average_inits:
                    sums[s.name][t] = sums[s.name].get(t, 0) + arrays[s.name].astype(np.float64)
                else:
                    scores[s.name][t] = arrays[s.name]
            if extras_at(t):
                predictions[t] = arrays["predictions"]
                if "embeddings" in arrays:
                    emb[t] = arrays["embeddings"]
                if "gradients" in arrays:
                    grads[t] = arrays["gradients"]
                    projection["value"] = str(arrays["gradient_projection"])

    for name, per_epoch in sums.items():
        for t, total in per_epoch.items():
            scores[name][t] = (total / k_of[name]).astype(np.float32)
    for s in chosen:
        if s.kind == "random":
            values = random_scores(n, seed)
            scores[s.name] = dict.fromkeys(epochs, values)
        elif at[s.name] != epochs:  # a fixed epoch: its values stand for every epoch of the run
            scores[s.name] = dict.fromkeys(epochs, scores[s.name][at[s.name][0]])
    timing["total"] = time.perf_counter() - start
    return ScoreResult(scores=scores, labels=dataset.y_train.cpu().numpy(), indices=np.asarray(index),
                       predictions=predictions, embeddings=emb if embeddings else None, epochs=epochs,
                       inits=max(1, k_total), seed=seed, model=model_name, dataset=dataset.name,
                       surrogates_trained=trained, seconds=timing, gradients=grads if gradients else None,
                       gradient_projection=projection["value"])
