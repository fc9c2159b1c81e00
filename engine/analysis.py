"""Pure numpy (and scipy) on scores and results, shared by every kind, the CLI and the TUI.

Overlap of top-k sets, rank correlation, detection precision, mean ± std over
seeds. No torch: results and score arrays in, plain numbers and rows out.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Protocol

import numpy as np
from scipy.stats import rankdata

from . import names
from .errors import ConfigError


class Result(Protocol):
    """What the summaries read of a trial's outcome (a store.runs.TrialRecord)."""

    tags: dict[str, Any]
    status: str
    metrics: dict[str, float]


# ---------------------------------------------------------------- over seeds
def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over seeds: NaN mean for none, std 0 for one."""
    values = np.asarray(list(values), dtype=np.float64)
    if not len(values):
        return float("nan"), 0.0
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


SWEEP_KEYS = ("method", "strategy", "ratio", "epoch")
_KEY_TYPES = {"ratio": float, "epoch": int, "seed": int}


def summarize_seeds(records: Iterable[Result], keys: tuple[str, ...] = SWEEP_KEYS, metric: str = "test_accuracy",
                    means: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One row per group of `keys` (the full-data reference first): mean ± std of `metric` over the finished
    trials, how many seeds finished and failed, and the mean of each metric in `means`."""
    finished: dict[tuple, list[Result]] = defaultdict(list)
    failed: dict[tuple, int] = defaultdict(int)
    for r in records:
        key = tuple(_KEY_TYPES.get(k, str)(r.tags[k]) for k in keys)
        if r.status == names.FINISHED and metric in r.metrics:
            finished[key].append(r)
        else:
            failed[key] += 1
    rows = []
    for key in sorted(set(finished) | set(failed), key=lambda k: (k[0] != names.FULL, *k)):
        done = finished.get(key, [])
        mean, std = mean_std(r.metrics[metric] for r in done)
        row = {**dict(zip(keys, key)), "mean_accuracy": mean, "std_accuracy": std}
        for extra in means:
            row[extra] = mean_std(r.metrics.get(extra, np.nan) for r in done)[0]
        rows.append({**row, "seeds": len(done), "failed": failed.get(key, 0)})
    return rows


# ---------------------------------------------------------------- scores against scores
def top_indices(scores: np.ndarray, k: int, lowest: bool = False) -> np.ndarray:
    """The k highest (or lowest) scored indices, best first; ties go to the lower index (a stable sort)."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores if lowest else -scores, kind="stable")
    return order[:k]


def spearman(scores: list[np.ndarray]) -> np.ndarray:
    """Spearman's rank correlation matrix: Pearson's correlation of average ranks (ties share a rank)."""
    ranks = np.stack([rankdata(np.asarray(s, dtype=np.float64)) for s in scores])
    if any(np.ptp(r) == 0 for r in ranks):  # a constant score has no ranking to correlate
        out = np.full((len(ranks), len(ranks)), np.nan)
        np.fill_diagonal(out, 1.0)
        live = [i for i, r in enumerate(ranks) if np.ptp(r) > 0]
        if len(live) > 1:
            out[np.ix_(live, live)] = np.corrcoef(ranks[live])
        return out
    return np.corrcoef(ranks)


def overlap_matrices(scores: dict[str, np.ndarray], k: int) -> dict[str, Any]:
    """methods x methods repetition rates of the top-k ("first") and bottom-k ("last") sets, and Spearman's rho.

    Each set is a boolean mask, so one matrix product counts every pair's intersection.
    """
    methods = list(scores)
    n = len(next(iter(scores.values())))
    if not 1 <= k <= n:
        raise ConfigError(f"overlap.k={k} must be between 1 and the {n} training samples; lower overlap.k")
    out: dict[str, Any] = {"methods": methods, "k": int(k)}
    for name, lowest in (("first", False), ("last", True)):
        masks = np.zeros((len(methods), n), dtype=np.float64)
        for i, m in enumerate(methods):
            masks[i, top_indices(scores[m], k, lowest)] = 1.0
        out[name] = (masks @ masks.T / k).tolist()
    out["spearman"] = spearman([scores[m] for m in methods]).tolist()
    return out


def pair_rows(matrices: dict[str, Any], epoch: int) -> list[dict[str, Any]]:
    """One summary row per unordered pair of methods."""
    methods = matrices["methods"]
    return [{"method_a": a, "method_b": b, "k": matrices["k"], "epoch": epoch,
             "first": matrices["first"][i][j], "last": matrices["last"][i][j], "spearman": matrices["spearman"][i][j]}
            for i, a in enumerate(methods) for j, b in enumerate(methods) if i < j]


def pick_samples(scores: np.ndarray, labels: np.ndarray, images, predictions: np.ndarray | None,
                 n: int = 10, lowest: bool = False, source_index: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The n highest (or lowest) scored samples as dicts: index, source_index, label, predicted, score, image.

    `index` is the position in the run's data set (what scores align with);
    `source_index` the position in the full source data, which differs for a subset.
    `images` is an array or a device tensor (uint8 CHW); only the chosen rows are copied.
    """
    chosen = top_indices(scores, min(n, len(scores)), lowest)
    picked = images[chosen]
    picked = picked.cpu().numpy() if hasattr(picked, "cpu") else np.asarray(picked)
    return [{"index": int(i), "source_index": int(source_index[i]) if source_index is not None else int(i),
             "label": int(labels[i]),
             "predicted": int(predictions[i]) if predictions is not None else None,
             "score": float(scores[i]), "image": picked[j].astype(np.uint8)} for j, i in enumerate(chosen)]


# ---------------------------------------------------------------- scores against known labels
def detection(scores: np.ndarray, flipped: np.ndarray, k: int) -> dict[str, float]:
    """Precision and recall at k of the k highest scores at finding `flipped`, and the ROC AUC of the ranking."""
    is_flipped = np.zeros(len(scores), dtype=bool)
    is_flipped[flipped] = True
    hits = int(is_flipped[top_indices(scores, k)].sum())
    ranks = rankdata(np.asarray(scores, dtype=np.float64))  # Mann-Whitney: AUC from the flipped samples' ranks
    m, rest = int(is_flipped.sum()), int((~is_flipped).sum())
    auc = (ranks[is_flipped].sum() - m * (m + 1) / 2) / (m * rest) if m and rest else float("nan")
    return {"precision": hits / k, "recall": hits / max(1, m), "auroc": float(auc), "hits": hits}
