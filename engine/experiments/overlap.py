"""`overlap`: how much scorers agree, as the repetition rate of their top-k and bottom-k sets.

R(a, b) = |S_a ∩ S_b| / k for the k highest ("first") and k lowest ("last")
scored samples, beside Spearman's rank correlation of the whole score vectors.
Also here, because every scored run uses them: the top-scored samples (image,
given and predicted label, score) and the grid PNG logged at the end of a run.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from . import ExperimentKind, register_kind
from .base import RunContext, summary_to_csv

RANDOM = "random"


# ---------------------------------------------------------------- the pure computation
def top_indices(scores: np.ndarray, k: int, lowest: bool = False) -> np.ndarray:
    """The k highest (or lowest) scored indices, best first; ties go to the lower index (a stable sort)."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores if lowest else -scores, kind="stable")
    return order[:k]


def spearman(scores: list[np.ndarray]) -> np.ndarray:
    """Spearman's rank correlation matrix: Pearson's correlation of average ranks (ties share a rank)."""
    from scipy.stats import rankdata

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


# ---------------------------------------------------------------- in a run
def log_samples(ctx: RunContext, scores: dict[tuple[str, int], np.ndarray], predictions: dict[int, np.ndarray],
                n: int = 10) -> None:
    """Log each epoch's surrogate predictions and, at the last epoch, a grid of each method's top-n samples
    (with the labels of `ctx.dataset`, which the scorers saw)."""
    from ..figures import sample_grid

    for epoch, pred in predictions.items():
        ctx.log_numpy(np.asarray(pred, dtype=np.int64), f"scores/predictions@e{epoch}.npy")
    if not scores:
        return
    last = max(e for _, e in scores)
    ds = ctx.dataset
    labels = ds.y_train.cpu().numpy()
    for (method, epoch), s in scores.items():
        if epoch != last or method == RANDOM:
            continue
        picked = pick_samples(s, labels, ds.x_train, predictions.get(epoch), n, source_index=ds.train_index)
        title = f"{ds.name}: the {len(picked)} highest {method} scores (surrogate epoch {epoch}); red: misclassified"
        ctx.log_figure(sample_grid(picked, title), f"plots/top_{method}.png")


def scores_for(ctx: RunContext, methods: list[str], epoch: int, scored: tuple | None = None):
    """{method: scores} at one surrogate epoch (random drawn from the config seed), the surrogate's
    {(method, epoch): scores} and its predictions; `scored` is a superset computed by the caller."""
    from ..scoring import random_scores
    from .prune import surrogate_scores

    scored, _, predictions = scored or surrogate_scores(ctx, methods, [epoch])
    out = {m: (random_scores(len(ctx.dataset), ctx.config.seed) if m == RANDOM else scored[(m, epoch)])
           for m in methods}
    return out, scored, predictions


def run_overlap(ctx: RunContext, scored: tuple | None = None) -> list[dict[str, Any]]:
    """Scores, the three matrices (overlap.json + heatmaps), and the scores and top samples as artifacts.

    With `scored` (the study's shared scoring pass) the caller has logged the scores.
    """
    from ..figures import heatmap
    from .prune import log_scores

    config = ctx.config
    epoch = config.overlap.epoch if config.overlap.epoch is not None else config.surrogate.epochs
    methods = config.overlap.methods
    own = scored is None
    scores, scored, predictions = scores_for(ctx, methods, epoch, scored)
    ctx.stage("overlap", f"{len(methods)} methods, k={config.overlap.k}")
    matrices = {**overlap_matrices(scores, config.overlap.k), "epoch": epoch}
    ctx.log_artifact_json(matrices, "overlap.json")
    what = {"first": f"top-{matrices['k']} (highest scores)", "last": f"bottom-{matrices['k']} (lowest scores)"}
    for name in ("first", "last", "spearman"):
        title = (f"Spearman rank correlation, epoch {epoch}" if name == "spearman"
                 else f"repetition rate of the {what[name]} sets, epoch {epoch}")
        ctx.log_figure(heatmap(matrices[name], methods, f"{config.data.dataset}: {title}", percent=name != "spearman"),
                       f"plots/overlap_{name}.png")
    if own:
        log_scores(ctx, {(m, epoch): s for m, s in scores.items()})
        log_samples(ctx, scored, predictions)
    return pair_rows(matrices, epoch)


def execute(ctx: RunContext) -> list[dict[str, Any]]:
    rows = run_overlap(ctx)
    ctx.log_text(summary_to_csv(rows), "summary.csv")
    ctx.log_artifact_json(rows, "summary.json")
    return rows


register_kind(ExperimentKind("overlap", "repetition rate of the top-k and bottom-k sets of each pair of scorers",
                             lambda config: 0, execute))
