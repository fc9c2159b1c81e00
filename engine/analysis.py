"""Pure numpy (and scipy) on scores and results, shared by every kind, the CLI and the TUI.

Overlap of top-k sets, rank correlation, detection precision, mean ± std over
seeds. No torch: results and score arrays in, plain numbers and rows out.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np
from scipy.stats import friedmanchisquare, rankdata, studentized_range, ttest_rel

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
                 n: int = 10, lowest: bool = False, source_index: np.ndarray | None = None,
                 classes: list[str] | None = None, paths: list[str] | None = None) -> list[dict[str, Any]]:
    """The n highest (or lowest) scored samples as dicts: index, source_index, label, class, predicted,
    predicted_class, path, score, image.

    `index` is the position in the run's data set (what scores align with);
    `source_index` the position in the full source data, which differs for a subset.
    `images` is an array or a device tensor (uint8 CHW); only the chosen rows are copied.
    `classes` names the labels (class and predicted_class; the label's number without it); `paths` is the file
    of each sample of the full source data (indexed by source_index), for data read from image files.
    """
    chosen = top_indices(scores, min(n, len(scores)), lowest)
    picked = images[chosen]
    picked = picked.cpu().numpy() if hasattr(picked, "cpu") else np.asarray(picked)

    def name(label: int | None) -> str | None:
        if label is None:
            return None
        return classes[label] if classes is not None and 0 <= label < len(classes) else str(label)

    out = []
    for j, i in enumerate(chosen):
        source = int(source_index[i]) if source_index is not None else int(i)
        label, predicted = int(labels[i]), (int(predictions[i]) if predictions is not None else None)
        out.append({"index": int(i), "source_index": source, "label": label, "class": name(label),
                    "predicted": predicted, "predicted_class": name(predicted),
                    "path": paths[source] if paths is not None and source < len(paths) else None,
                    "score": float(scores[i]), "image": picked[j].astype(np.uint8)})
    return out


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


# ---------------------------------------------------------------- the benchmark: methods against random
def paired_difference(method: Iterable[float], baseline: Iterable[float], level: float = 0.95) -> dict[str, float]:
    """Mean of the per-seed differences method - baseline, its `level` confidence interval (Student's t) and the
    two-sided p-value of the paired t-test (scipy.stats.ttest_rel). Same seed, same retraining randomness: paired.
    With one seed (or identical differences) the interval and p-value are NaN."""
    a, b = np.asarray(list(method), dtype=np.float64), np.asarray(list(baseline), dtype=np.float64)
    diff = float(np.mean(a - b)) if len(a) else float("nan")
    if len(a) < 2 or np.ptp(a - b) == 0:
        return {"diff": diff, "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan")}
    test = ttest_rel(a, b)
    ci = test.confidence_interval(level)
    return {"diff": diff, "ci_low": float(ci.low), "ci_high": float(ci.high), "p_value": float(test.pvalue)}


def method_label(method: str, strategy: str) -> str:
    """How a benchmark names a (scorer, strategy) pair: `scorer/strategy`, random alone."""
    return names.RANDOM if method == names.RANDOM and strategy in (names.RANDOM, "hardest") else f"{method}/{strategy}"


def benchmark_rows(records: Iterable[Result], metric: str = "test_accuracy", level: float = 0.95,
                   alpha: float = 0.05) -> list[dict[str, Any]]:
    """Per keep ratio, every method's accuracy (mean ± std over seeds), its paired difference from random (CI,
    p-value), its rank (1 = best mean; ties share the average rank) and whether it wins the ratio.

    `significant` means p < alpha. The full-data reference is one row per run (ratio 1, no comparison)."""
    acc: dict[tuple[str, float], dict[int, float]] = defaultdict(dict)
    for r in records:
        if r.status == names.FINISHED and metric in r.metrics:
            label = names.FULL if r.tags["method"] == names.FULL else method_label(r.tags["method"], r.tags["strategy"])
            acc[(label, float(r.tags["ratio"]))][int(r.tags["seed"])] = r.metrics[metric]
    rows: list[dict[str, Any]] = []
    for (label, ratio), seeds in acc.items():
        if label == names.FULL:
            mean, std = mean_std(seeds.values())
            rows.append({"method": label, "ratio": ratio, "mean_accuracy": mean, "std_accuracy": std,
                         "seeds": len(seeds)})
    for ratio in sorted({ratio for label, ratio in acc if label != names.FULL}):
        base = acc.get((names.RANDOM, ratio), {})
        at = [(label, seeds) for (label, r), seeds in acc.items() if r == ratio and label != names.FULL]
        means = [mean_std(seeds.values())[0] for _, seeds in at]
        ranks = rankdata(-np.asarray(means))
        for (label, seeds), mean, rank in zip(at, means, ranks):
            common = sorted(set(seeds) & set(base))
            test = paired_difference([seeds[s] for s in common], [base[s] for s in common], level)
            rows.append({"method": label, "ratio": ratio, "mean_accuracy": mean,
                         "std_accuracy": mean_std(seeds.values())[1], "seeds": len(seeds), **test,
                         "significant": bool(test["p_value"] < alpha), "rank": float(rank),
                         "winner": bool(rank == ranks.min())})
    return rows


def average_ranks(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each method's rank averaged over the keep ratios at which it ran (best first): the critical-difference view."""
    per: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if "rank" in row:
            per[row["method"]].append(row["rank"])
    return dict(sorted(((m, float(np.mean(r))) for m, r in per.items()), key=lambda kv: (kv[1], kv[0])))


def critical_difference(methods: int, datasets: int, alpha: float = 0.05) -> float:
    """Nemenyi's critical difference of average ranks (Demšar 2006): q_alpha * sqrt(k (k + 1) / (6 N)), with q_alpha
    the studentized range quantile over sqrt(2); here the N "data sets" are the keep ratios."""
    if methods < 2 or datasets < 1:
        return float("nan")
    q = studentized_range.ppf(1 - alpha, methods, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(methods * (methods + 1) / (6 * datasets)))


def friedman(rows: list[dict[str, Any]]) -> float:
    """p-value of Friedman's test that all methods rank alike over the keep ratios (methods present at every
    ratio; NaN for fewer than three methods or two ratios)."""
    ratios = sorted({r["ratio"] for r in rows if "rank" in r})
    acc = {(r["method"], r["ratio"]): r["mean_accuracy"] for r in rows if "rank" in r}
    methods = sorted({m for m, _ in acc if all((m, ratio) in acc for ratio in ratios)})
    if len(methods) < 3 or len(ratios) < 2:
        return float("nan")
    return float(friedmanchisquare(*[[acc[(m, ratio)] for ratio in ratios] for m in methods]).pvalue)


def crossover(rows: list[dict[str, Any]], method: str) -> float:
    """The keep ratio at which `method` stops beating random as pruning gets harsher: scanning from the largest
    ratio down, the first pair of neighbouring ratios where it beats random at the larger and not at the smaller,
    with the difference linearly interpolated to zero between them. NaN when there is none."""
    points = sorted((r["ratio"], r["diff"]) for r in rows if r["method"] == method and "diff" in r
                    and not np.isnan(r["diff"]))
    for (lo, d_lo), (hi, d_hi) in zip(reversed(points[:-1]), reversed(points[1:])):
        if d_hi > 0 >= d_lo:
            return float(hi - d_hi * (hi - lo) / (d_hi - d_lo))
    return float("nan")


# ---------------------------------------------------------------- dynamic selection against full training
def savings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows (means over seeds of `forward`, `backward`, `wall_seconds`) with, beside the full-data row,
    each method's accuracy difference from it and the fractions of forward passes, backward passes and wall time
    it saved (1 - method / full; NaN without a full-data row)."""
    full = next((r for r in rows if r["method"] == names.FULL), None)

    def saved(row: dict[str, Any], key: str) -> float:
        return 1 - row[key] / full[key] if full and full.get(key) else float("nan")

    return [{**r, "accuracy_vs_full": r["mean_accuracy"] - full["mean_accuracy"] if full else float("nan"),
             "forward_saved": saved(r, "forward"), "backward_saved": saved(r, "backward"),
             "wall_saved": saved(r, "wall_seconds")} for r in rows]
