"""`noise`: can a scorer find mislabeled samples?

A seeded fraction p of the training labels is flipped, each to a different
class drawn uniformly (engine.data.noise); the surrogate trains on the noisy
labels and scores them; each scorer's k highest-scored samples are compared with
the flipped ones (precision and recall at k, k = the number flipped by default,
and the ROC AUC of the whole ranking). With `noise.retrain`, the top-scored
samples are pruned and a model retrained on the rest (the `retrain` task on the
noisy labels, so `sweep.budget` holds), beside the noisy full data and an oracle
that drops exactly the flipped samples.

The flip is made on a copy of the run's data set: the loaded one stays clean.
Its labels are logged (`noise/labels.npy`, `noise/flipped.npy`) so the
top-scored samples show the labels the scorers saw.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .. import names
from ..analysis import detection, summarize_seeds
from ..config import Config
from ..data.noise import with_label_noise
from ..figures import detection_bars
from ..runner import steps
from ..runner.context import RunContext
from ..runner.trials import Trial, full_data_trials
from ..scoring.surrogate import random_scores
from ..selection.base import keep_count, select


def plan(config: Config, methods: list[str]) -> list[Trial]:
    if not config.noise.retrain:
        return []
    keep = 1 - (config.noise.prune_fraction or config.noise.fraction)
    seeds = config.sweep.seeds
    return (full_data_trials(seeds) + [Trial(names.ORACLE, names.CLEAN, keep, s, 0) for s in seeds] +
            [Trial(m, "easiest", keep, s, 0) for m in methods for s in seeds])


def count_trials(config: Config) -> int:
    return len(plan(config, config.noise.methods))


def kept_for(ctx: RunContext, trial: Trial, scores: dict[str, np.ndarray], flipped: np.ndarray) -> np.ndarray:
    """Keep the easiest of each method's scores; the oracle keeps the clean samples (trimmed to the budget)."""
    n = len(ctx.dataset)
    if trial.method == names.FULL:
        return np.arange(n)
    if trial.method == names.ORACLE:
        clean = np.setdiff1d(np.arange(n), flipped)
        return np.sort(np.random.default_rng(trial.seed).permutation(clean)[:keep_count(trial.ratio, n)])
    s = random_scores(n, trial.seed) if trial.method == names.RANDOM else scores[trial.method]  # as prune draws it
    return select("easiest", s, trial.ratio, ctx.labels, seed=trial.seed)


def retrain(ctx: RunContext, scores: dict[str, np.ndarray], flipped: np.ndarray) -> dict[str, dict]:
    """Retrain on each method's kept samples with the noisy labels; mean ± std accuracy per method."""
    run_names = {names.FULL: "full noisy data", names.ORACLE: "oracle: flipped samples removed"}
    jobs = [(t, functools.partial(kept_for, ctx, t, scores, flipped)) for t in plan(ctx.config, list(scores))]
    records = ctx.run_trials(jobs, options={"noise": True},
                             name_of=lambda t: f"noise retrain: {run_names.get(t.method, t.method + ' pruned')} "
                                               f"/ seed {t.seed}")
    return {r["method"]: r for r in summarize_seeds(records)}


def execute(ctx: RunContext) -> list[dict[str, Any]]:
    config, noise = ctx.config, ctx.config.noise
    noisy_ds, flipped = with_label_noise(ctx.dataset, noise.fraction, noise.seed)
    ctx.log(f"flipped {len(flipped)} of {len(noisy_ds)} training labels (p={noise.fraction:g}, seed {noise.seed})")
    noisy = ctx.derive(dataset=noisy_ds)  # the same run, but the surrogate sees the noisy labels
    ctx.log_numpy(noisy.labels, names.NOISE_LABELS)
    ctx.log_numpy(flipped.astype(np.int64), names.NOISE_FLIPPED)
    epoch = config.surrogate.epochs
    scored = steps.surrogate_scores(noisy, noise.methods, [epoch])
    scores = steps.scores_at(noisy, noise.methods, epoch, scored)
    steps.log_scores(ctx, {(m, epoch): s for m, s in scores.items()})
    steps.log_samples(noisy, scored)
    k = noise.k or len(flipped)
    ctx.stage("noise", f"precision and recall at k={k} of {len(noise.methods)} scorers")
    rows = [{"method": m, "k": k, "flipped": len(flipped), "noise_fraction": noise.fraction,
             **detection(s, flipped, min(k, len(s)))} for m, s in scores.items()]
    if noise.retrain:
        accuracy = retrain(noisy, scores, flipped)
        extra = [{"method": m, "k": 0, "flipped": len(flipped), "noise_fraction": noise.fraction,
                  "precision": float("nan"), "recall": float("nan"), "auroc": float("nan"), "hits": 0}
                 for m in (names.FULL, names.ORACLE)]
        rows = [{**r, "mean_accuracy": accuracy.get(r["method"], {}).get("mean_accuracy", float("nan")),
                 "std_accuracy": accuracy.get(r["method"], {}).get("std_accuracy", 0.0)} for r in extra + rows]
    ctx.log_figure(detection_bars(rows, f"{config.data.dataset}: finding {len(flipped)} flipped labels "
                                        f"(p={noise.fraction:g}), k={k}"), names.plot_artifact("noise_detection"))
    return rows
