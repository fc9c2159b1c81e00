"""`noise`: can a scorer find mislabeled samples?

A seeded fraction p of the training labels is flipped, each to a different
class drawn uniformly; the surrogate trains on the noisy labels and scores them;
each scorer's k highest-scored samples are compared with the flipped ones
(precision and recall at k, k = the number flipped by default, and the ROC AUC
of the whole ranking). With `noise.retrain`, the top-scored samples are pruned
and a model retrained on the rest, beside the noisy full data and an oracle that
drops exactly the flipped samples.

The flip is made on a copy of the run's data set: the loaded one stays clean.
Its labels are logged (`noise/labels.npy`, `noise/flipped.npy`) so the
top-scored samples show the labels the scorers saw.
"""
from __future__ import annotations

import copy
import functools
from typing import Any

import numpy as np

from . import ExperimentKind, register_kind
from .base import FULL, RunContext, Trial, TrialJob, register_trial_task, summary_to_csv, trial_dataset

RANDOM = "random"
ORACLE = "oracle"  # retrain without exactly the flipped samples: the best any scorer could do


def flip_labels(labels: np.ndarray, fraction: float, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, sorted flipped indices): round(p·n) samples, each moved to a different class."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=np.int64)
    flipped = np.sort(rng.choice(len(labels), size=int(round(fraction * len(labels))), replace=False))
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, num_classes, size=len(flipped))) % num_classes
    return noisy, flipped


def noisy_dataset(dataset, noisy: np.ndarray):
    """A copy of `dataset` with other training labels; images are shared, not copied."""
    import torch

    y = torch.as_tensor(noisy, dtype=dataset.y_train.dtype).to(dataset.device)
    return dataset.replace(y_train=y)


def detection(scores: np.ndarray, flipped: np.ndarray, k: int) -> dict[str, float]:
    """Precision and recall at k of the k highest scores at finding `flipped`, and the ROC AUC of the ranking."""
    from scipy.stats import rankdata

    from .overlap import top_indices

    is_flipped = np.zeros(len(scores), dtype=bool)
    is_flipped[flipped] = True
    hits = int(is_flipped[top_indices(scores, k)].sum())
    ranks = rankdata(np.asarray(scores, dtype=np.float64))  # Mann-Whitney: AUC from the flipped samples' ranks
    m, rest = int(is_flipped.sum()), int((~is_flipped).sum())
    auc = (ranks[is_flipped].sum() - m * (m + 1) / 2) / (m * rest) if m and rest else float("nan")
    return {"precision": hits / k, "recall": hits / max(1, m), "auroc": float(auc), "hits": hits}


def plan(config, methods: list[str]) -> list[Trial]:
    if not config.noise.retrain:
        return []
    keep = 1 - (config.noise.prune_fraction or config.noise.fraction)
    seeds = config.sweep.seeds
    return ([Trial(FULL, "none", 1.0, s, 0) for s in seeds] + [Trial(ORACLE, "clean", keep, s, 0) for s in seeds] +
            [Trial(m, "easiest", keep, s, 0) for m in methods for s in seeds])


def count_trials(config) -> int:
    return len(plan(config, config.noise.methods))


def retrain(ctx: RunContext, scores: dict[str, np.ndarray], flipped: np.ndarray) -> dict[str, dict]:
    """Prune each method's top-scored samples (keep the easiest), retrain on the noisy rest; accuracy per method.

    `ctx.dataset` holds the noisy labels. Selection happens here; each retraining is a
    `noise-retrain` job for the executor, which re-draws the same noisy labels.
    """
    from ..scoring import random_scores
    from ..selection import keep_count, select
    from .prune import summarize

    config, noisy_ds = ctx.config, ctx.dataset
    labels = noisy_ds.y_train.cpu().numpy()
    n = len(noisy_ds)

    def kept_for(trial: Trial) -> np.ndarray:
        if trial.method == FULL:
            return np.arange(n)
        if trial.method == ORACLE:  # the clean samples, trimmed to the same budget when more are pruned
            clean = np.setdiff1d(np.arange(n), flipped)
            return np.sort(np.random.default_rng(trial.seed).permutation(clean)[:keep_count(trial.ratio, n)])
        s = random_scores(n, trial.seed) if trial.method == RANDOM else scores[trial.method]  # as prune draws it
        return select("easiest", s, trial.ratio, labels, seed=trial.seed)

    names = {FULL: "full noisy data", ORACLE: "oracle: flipped samples removed"}
    records = ctx.run_trials([(t, functools.partial(kept_for, t)) for t in plan(config, list(scores))],
                             task="noise-retrain",
                             name_of=lambda t: f"noise retrain: {names.get(t.method, t.method + ' pruned')} / seed "
                                               f"{t.seed}")
    return {r["method"]: r for r in summarize(records)}


def retrain_on_noisy_labels(job: TrialJob, config, track, child: str, on_event) -> dict[str, float]:
    """The `noise-retrain` trial task: the run's noisy labels, re-drawn from the seed, and the kept samples."""
    from ..train import train

    trial, ds = job.trial, trial_dataset(config)
    noisy, flipped = flip_labels(ds.y_train.cpu().numpy(), config.noise.fraction, ds.num_classes, config.noise.seed)
    kept = job.kept if job.kept is not None else np.arange(len(ds))
    track.log_params(child, {**trial.tags(), "kept": len(kept), "flipped_kept": int(np.isin(flipped, kept).sum())})
    result = train(config.model, noisy_dataset(ds, noisy), config.train, seed=trial.seed, indices=kept,
                   on_event=on_event, trial=job.index)
    track.log_history(child, result.history)
    track.log_metrics(child, {"final_test_accuracy": result.test_accuracy}, step=result.epochs)
    return {"test_accuracy": result.test_accuracy, "test_loss": result.test_loss, "kept": float(len(kept))}


register_trial_task("noise-retrain", retrain_on_noisy_labels)


def execute(ctx: RunContext) -> list[dict[str, Any]]:
    from ..figures import detection_bars
    from .overlap import log_samples, scores_for
    from .prune import log_scores

    config, noise = ctx.config, ctx.config.noise
    clean = ctx.dataset.y_train.cpu().numpy()
    noisy, flipped = flip_labels(clean, noise.fraction, ctx.dataset.num_classes, noise.seed)
    ctx.log(f"flipped {len(flipped)} of {len(clean)} training labels (p={noise.fraction:g}, seed {noise.seed})")
    ctx.log_numpy(noisy, "noise/labels.npy")
    ctx.log_numpy(flipped.astype(np.int64), "noise/flipped.npy")
    noisy_ctx = copy.copy(ctx)  # the same run (records, artifacts), but the surrogate sees the noisy labels
    noisy_ctx.dataset = noisy_dataset(ctx.dataset, noisy)
    epoch = config.surrogate.epochs
    scores, scored, predictions = scores_for(noisy_ctx, noise.methods, epoch)
    log_scores(ctx, {(m, epoch): s for m, s in scores.items()})
    log_samples(noisy_ctx, scored, predictions)
    k = noise.k or len(flipped)
    ctx.stage("noise", f"precision and recall at k={k} of {len(noise.methods)} scorers")
    rows = [{"method": m, "k": k, "flipped": len(flipped), "noise_fraction": noise.fraction,
             **detection(s, flipped, min(k, len(s)))} for m, s in scores.items()]
    if noise.retrain:
        accuracy = retrain(noisy_ctx, scores, flipped)
        extra = [{"method": m, "k": 0, "flipped": len(flipped), "noise_fraction": noise.fraction,
                  "precision": float("nan"), "recall": float("nan"), "auroc": float("nan"), "hits": 0}
                 for m in (FULL, ORACLE)]
        rows = [{**r, "mean_accuracy": accuracy.get(r["method"], {}).get("mean_accuracy", float("nan")),
                 "std_accuracy": accuracy.get(r["method"], {}).get("std_accuracy", 0.0)} for r in extra + rows]
    ctx.log_text(summary_to_csv(rows), "summary.csv")
    ctx.log_artifact_json(rows, "summary.json")
    ctx.log_figure(detection_bars(rows, f"{config.data.dataset}: finding {len(flipped)} flipped labels "
                                        f"(p={noise.fraction:g}), k={k}"), "plots/noise_detection.png")
    return rows


register_kind(ExperimentKind("noise", "flip a fraction of the labels; precision and recall at k of each scorer",
                             count_trials, execute))
