"""`select`: per-sample scores in, the sorted indices of the kept subset out; and the shared building blocks.

One registry, `STRATEGIES`, read by the config validator, the CLI and the TUI's
forms alike. Every strategy sees the same inputs: float scores aligned with
dataset indices (higher means "harder", whatever the scorer), the labels, a
seed, and, for the ones that need them, the surrogate's penultimate-layer
embeddings. `select` validates, turns the keep ratio into an exact count and
returns a sorted int64 array of exactly that many distinct indices.

Decisions that hold for every strategy:

- **Count.** `keep_count(r, n) = max(1, round(r * n))` with Python's `round`,
  so anyone can predict the size of a selection without running it.
- **Ties.** Samples with equal scores are ordered by a permutation drawn from
  the seed, not by index: integer scores (forgetting counts) tie by the
  thousand, and dataset order often carries structure (source files, classes),
  so "lowest index first" would bias the kept set. Scores with no ties give
  the same selection for every seed. `hardest` and `easiest` read one total
  order from its two ends, so at `keep_ratio <= 0.5` they never overlap, even
  when every score ties.
- **Randomness.** Everything random draws from numpy Generators seeded from
  `seed` alone; the k-means of each class draws from its own child stream
  (`SeedSequence(seed).spawn`), so one class's clustering does not shift the
  others'.
- **No per-sample Python.** Grouped "take the best q of each group" is one
  lexsort; only loops over strata, classes, clusters and Lloyd iterations
  remain.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, PrunelabError
from ..options import is_int as _is_int
from .registry import STRATEGIES, check_keep_ratio, check_strategy


def keep_count(keep_ratio: float, n: int) -> int:
    """How many of n samples a selection keeps: round(keep_ratio * n), at least 1."""
    return min(n, max(1, round(keep_ratio * n)))


def _to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor, on any device
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _check_arrays(scores, labels, embeddings, seed) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Scores as float64, labels as integers, embeddings as float64 (n, d): all aligned, no NaN."""
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"seed={seed!r} is invalid for selection; use an integer >= 0")
    scores = _to_numpy(scores)
    if scores.ndim != 1 or scores.size == 0 or not (np.issubdtype(scores.dtype, np.number)
                                                    or scores.dtype == bool):
        raise DataError(f"scores must be a non-empty 1-D numeric array aligned with the data set, "
                        f"got {scores.dtype} {scores.shape}")
    scores = scores.astype(np.float64)
    bad = np.flatnonzero(np.isnan(scores))
    if bad.size:
        raise DataError(f"scores hold {bad.size} NaN value(s) (first at index {bad[0]}); "
                        f"the scorer failed on those samples: rescore them before selecting")
    labels = _to_numpy(labels)
    if labels.shape != scores.shape or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be {len(scores)} integers aligned with the scores, "
                        f"got {labels.dtype} {labels.shape}")
    if embeddings is not None:
        embeddings = _to_numpy(embeddings)
        if embeddings.ndim != 2 or len(embeddings) != len(scores) or not np.issubdtype(embeddings.dtype, np.number):
            raise DataError(f"embeddings must be a numeric array of shape ({len(scores)}, d), "
                            f"got {embeddings.dtype} {embeddings.shape}")
        embeddings = embeddings.astype(np.float64)
        if not np.isfinite(embeddings).all():
            raise DataError("embeddings hold NaN or infinite values; recompute them from a trained surrogate")
    return scores, labels, embeddings


# ------------------------------------------------------------------ the entry point
@dataclass(frozen=True)
class Selection:
    """A selection: sorted int64 kept indices and, for weighted coresets (CRAIG, GradMatch), one float64
    loss weight per kept index (None: every kept sample counts once)."""

    indices: np.ndarray
    weights: np.ndarray | None = None


def select(strategy: str, scores: np.ndarray, keep_ratio: float, labels: np.ndarray, seed: int = 0,
           embeddings: np.ndarray | None = None, gradients: np.ndarray | None = None, **options) -> np.ndarray:
    """The sorted int64 indices that `strategy` keeps: exactly `keep_count(keep_ratio, len(scores))`.

    Deterministic given `seed`. `keep_ratio == 1` keeps everything (after
    validating, so a bad config fails the same way at every ratio). Weights, if
    the strategy gives any, are dropped: `select_weighted` returns them.
    """
    return select_weighted(strategy, scores, keep_ratio, labels, seed, embeddings, gradients, **options).indices


def select_weighted(strategy: str, scores: np.ndarray, keep_ratio: float, labels: np.ndarray, seed: int = 0,
                    embeddings: np.ndarray | None = None, gradients: np.ndarray | None = None,
                    **options) -> Selection:
    """`select`, with the strategy's per-sample weights (None unless it gives some and `weighted` is true).

    `gradients` are the last-layer per-sample gradients (n, D) that gradient coresets
    need (`Strategy.needs_gradients`; engine/scoring/gradembed.py computes them).
    """
    check_strategy(strategy, options)
    check_keep_ratio(keep_ratio)
    spec = STRATEGIES[strategy]
    wants_embeddings, wants_gradients = spec.inputs(options)
    if wants_embeddings and embeddings is None:
        raise ConfigError(f"selection strategy {strategy!r} needs embeddings: pass embeddings= the surrogate's "
                          f"penultimate-layer features (model.embed(x)), an array of shape (n, d)")
    if wants_gradients and gradients is None:
        raise ConfigError(f"selection strategy {strategy!r} needs gradients: pass gradients= the surrogate's "
                          f"last-layer per-sample gradients (engine.scoring.gradembed), an array of shape (n, D)")
    scores, labels, embeddings = _check_arrays(scores, labels, embeddings, seed)
    n = len(scores)
    budget = keep_count(keep_ratio, n)
    if budget == n:
        return Selection(np.arange(n, dtype=np.int64))
    opts = {**spec.defaults, **options}
    weighted = opts.pop("weighted", True)
    extra = {"gradients": _check_gradients(gradients, n)} if wants_gradients else {}
    out = spec.fn(scores, budget, labels, seed, embeddings, **extra, **opts)
    raw, weights = (out.indices, out.weights) if isinstance(out, Selection) else (out, None)
    raw = np.asarray(raw, dtype=np.int64)
    kept, first = np.unique(raw, return_index=True)
    if len(kept) != budget or len(raw) != budget or kept[0] < 0 or kept[-1] >= n:
        raise PrunelabError(f"selection strategy {strategy!r} returned {len(kept)} distinct indices in "
                            f"[{kept.min() if kept.size else '-'}, {kept.max() if kept.size else '-'}]; "
                            f"it must return exactly {budget} distinct indices in [0, {n})")
    if weights is None or not weighted:
        return Selection(kept)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != raw.shape or not np.isfinite(weights).all() or (weights < 0).any():
        raise PrunelabError(f"selection strategy {strategy!r} returned weights of shape {weights.shape}; "
                            f"it must return {budget} finite weights >= 0, one per kept index")
    return Selection(kept, weights[first])


def _check_gradients(gradients: Any, n: int) -> np.ndarray:
    gradients = _to_numpy(gradients)
    if gradients.ndim != 2 or len(gradients) != n or not np.issubdtype(gradients.dtype, np.number):
        raise DataError(f"gradients must be a numeric array of shape ({n}, D), got {gradients.dtype} "
                        f"{gradients.shape}")
    if not np.isfinite(gradients).all():
        raise DataError("gradients hold NaN or infinite values; recompute them from a trained surrogate")
    return gradients


# ------------------------------------------------------------------ building blocks
def priority(scores: np.ndarray, order: str, rng: np.random.Generator) -> np.ndarray:
    """A rank per sample, 0..n-1, highest taken first; a total order with no ties.

    "hardest" ranks by score with seeded tie-breaking, "easiest" is exactly
    that order reversed (so the two are disjoint at ratios <= 0.5), and
    "random" is a seeded permutation. Draws one permutation from `rng` in
    every case, so a strategy's later draws do not depend on `order`.
    """
    n = len(scores)
    shuffle = rng.permutation(n)
    if order == "random":
        return shuffle
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((shuffle, scores))] = np.arange(n)
    return rank if order == "hardest" else n - 1 - rank


def take_per_group(groups: np.ndarray, rank: np.ndarray, quotas: np.ndarray) -> np.ndarray:
    """For each group g (0..G-1), the `quotas[g]` members with the highest rank; one lexsort."""
    order = np.lexsort((-rank, groups))
    sorted_groups = groups[order]
    starts = np.searchsorted(sorted_groups, np.arange(len(quotas)))
    position = np.arange(len(order)) - starts[sorted_groups]
    return order[position < np.asarray(quotas)[sorted_groups]]


def allocate(budget: int, sizes: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Spread `budget` over groups of the given sizes as evenly as they allow (CCS, Algorithm 1).

    Visit the groups from smallest to largest; each takes min(its size,
    remaining budget // groups not yet visited). This is the paper's loop,
    and it equals water-filling: every group that is not taken whole gets
    the same share, within one; the groups visited last get the remainders.
    Empty groups come first and take nothing, so they do not dilute the
    share. The result sums to min(budget, sizes.sum()).

    Equal sizes are visited in a seeded random order when `rng` is given (by
    position otherwise). That matters when the budget is below the number of
    groups: by position, the one-sample units would all go to the last
    strata, i.e. the hardest scores (the paper's code leaves this order to
    torch.argsort).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    out = np.zeros_like(sizes)
    remaining = int(budget)
    tiebreak = rng.permutation(len(sizes)) if rng is not None else np.arange(len(sizes))
    order = np.lexsort((tiebreak, sizes))
    for visited, g in enumerate(order):
        out[g] = min(int(sizes[g]), remaining // (len(order) - visited))
        remaining -= int(out[g])
    return out


def class_quotas(sizes: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Per-class counts proportional to class sizes that sum to exactly `budget`.

    Largest remainders (Hamilton): each class gets floor(budget * size / n),
    and the leftover units go to the largest fractional parts, ties broken by
    a seeded permutation so no class is favoured by its position. Integer
    arithmetic, so 0.29 * 100 is 29, not 28.999.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    n = int(sizes.sum())
    scaled = budget * sizes
    quotas, remainders = scaled // n, scaled % n
    left = budget - int(quotas.sum())
    winners = np.lexsort((rng.permutation(len(sizes)), -remainders))[:left]
    quotas[winners] += 1
    return quotas


def score_strata(scores: np.ndarray, bins: int) -> np.ndarray:
    """The stratum (0..bins-1) of each score: `bins` equal-width ranges over [min, max].

    The maximum lands in the last stratum (the paper's code stretches the
    maximum by 1.0001 for that, which misbehaves for negative scores).
    Infinite scores (a scorer's "never learned") are clipped to the finite
    range, so they sit in the end strata instead of making the width infinite.
    """
    scores = np.asarray(scores, dtype=np.float64)
    finite = scores[np.isfinite(scores)]
    if finite.size == 0 or finite.max() <= finite.min():
        return np.zeros(len(scores), dtype=np.int64)
    low, high = finite.min(), finite.max()
    position = (np.clip(scores, low, high) - low) / (high - low)
    return np.minimum((position * bins).astype(np.int64), bins - 1)


