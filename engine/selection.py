"""Selection strategies: per-sample scores in, the sorted indices of the kept subset out.

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

import numbers
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import ConfigError, DataError, PrunelabError, UnknownNameError

# fn(scores, budget, labels, seed, embeddings, **options) -> kept indices (any order, distinct)
StrategyFn = Callable[..., np.ndarray]

ORDERS = ("hardest", "easiest", "random")


@dataclass(frozen=True)
class Strategy:
    """A named selection strategy and what a form needs to offer it.

    `options` maps an option name to `(default, description)`. `fn` is called as
    `fn(scores, budget, labels, seed, embeddings, **options)` with every option
    filled in, and returns exactly `budget` distinct indices in any order.
    """

    name: str
    description: str
    fn: StrategyFn
    needs_embeddings: bool = False
    options: dict[str, tuple[Any, str]] = field(default_factory=dict)

    @property
    def defaults(self) -> dict[str, Any]:
        return {key: default for key, (default, _) in self.options.items()}

    def describe(self) -> dict[str, Any]:
        """Plain data for CLIs, forms and JSON: name, description, embeddings flag, options."""
        return {
            "name": self.name,
            "description": self.description,
            "needs_embeddings": self.needs_embeddings,
            "options": {key: {"default": default, "description": text}
                        for key, (default, text) in self.options.items()},
        }


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str, fn: StrategyFn, description: str = "", needs_embeddings: bool = False,
                      options: dict[str, tuple[Any, str]] | None = None) -> Strategy:
    """Add a strategy; it is then usable by name in configs, the CLI and the TUI.

    Values of options named like the built-in ones (beta, bins, clusters,
    iterations, order) are range-checked by `check_strategy`; a new option's
    values are the strategy's own to check (raise ConfigError from `fn`).
    """
    strategy = Strategy(name, description or (fn.__doc__ or "").strip().split("\n")[0], fn,
                        needs_embeddings, dict(options or {}))
    STRATEGIES[name] = strategy
    return strategy


def describe_strategies() -> list[dict[str, Any]]:
    """Every registered strategy as plain data, in registration order."""
    return [s.describe() for s in STRATEGIES.values()]


# ------------------------------------------------------------------ validation
def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


# option name -> (is the value valid, the valid range in words)
_OPTION_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "beta": (lambda v: _is_real(v) and 0 <= v < 1, "a number with 0 <= beta < 1"),
    "bins": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "clusters": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "iterations": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "order": (lambda v: v in ORDERS, "one of " + ", ".join(ORDERS)),
}


def check_strategy(name: str, options: dict) -> None:
    """Raise UnknownNameError for an unknown strategy, ConfigError for an unknown or out-of-range option."""
    if name not in STRATEGIES:
        raise UnknownNameError("selection strategy", name, STRATEGIES)
    known = STRATEGIES[name].options
    for key, value in (options or {}).items():
        if key not in known:
            takes = f"its options are: {', '.join(known)}" if known else "it takes no options"
            raise ConfigError(f"selection strategy {name!r} has no option {key!r}; {takes}")
        rule = _OPTION_RULES.get(key)
        if rule is not None and not rule[0](value):
            raise ConfigError(f"selection option {key}={value!r} is out of range for strategy {name!r}; "
                              f"use {rule[1]}")


def check_keep_ratio(keep_ratio: Any) -> None:
    """Raise ConfigError unless 0 < keep_ratio <= 1."""
    if not (_is_real(keep_ratio) and 0 < keep_ratio <= 1):
        raise ConfigError(f"keep_ratio={keep_ratio!r} is out of range; use a number with 0 < keep_ratio <= 1")


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
def select(strategy: str, scores: np.ndarray, keep_ratio: float, labels: np.ndarray, seed: int = 0,
           embeddings: np.ndarray | None = None, **options) -> np.ndarray:
    """The sorted int64 indices that `strategy` keeps: exactly `keep_count(keep_ratio, len(scores))`.

    Deterministic given `seed`. `keep_ratio == 1` keeps everything (after
    validating, so a bad config fails the same way at every ratio).
    """
    check_strategy(strategy, options)
    check_keep_ratio(keep_ratio)
    spec = STRATEGIES[strategy]
    if spec.needs_embeddings and embeddings is None:
        raise ConfigError(f"selection strategy {strategy!r} needs embeddings: pass embeddings= the surrogate's "
                          f"penultimate-layer features (model.embed(x)), an array of shape (n, d)")
    scores, labels, embeddings = _check_arrays(scores, labels, embeddings, seed)
    n = len(scores)
    budget = keep_count(keep_ratio, n)
    if budget == n:
        return np.arange(n, dtype=np.int64)
    kept = spec.fn(scores, budget, labels, seed, embeddings, **{**spec.defaults, **options})
    kept = np.unique(np.asarray(kept, dtype=np.int64))
    if len(kept) != budget or kept[0] < 0 or kept[-1] >= n:
        raise PrunelabError(f"selection strategy {strategy!r} returned {len(kept)} distinct indices in "
                            f"[{kept.min() if kept.size else '-'}, {kept.max() if kept.size else '-'}]; "
                            f"it must return exactly {budget} distinct indices in [0, {n})")
    return kept


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


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """k-means with k-means++ seeding and at most `iterations` Lloyd steps: (assignment, centers).

    Vectorised over samples (distances as one matrix product per step);
    stops early once no assignment changes. An empty cluster keeps its old
    center. With fewer than k distinct points the surplus centers duplicate
    others and stay empty. The returned assignment is to the returned centers.
    """
    x = np.asarray(points, dtype=np.float64)
    n = len(x)
    k = max(1, min(int(k), n))
    sq = np.einsum("ij,ij->i", x, x)

    def sqdist(centers: np.ndarray) -> np.ndarray:
        return np.maximum(sq[:, None] - 2.0 * x @ centers.T + np.einsum("ij,ij->i", centers, centers)[None], 0.0)

    centers = np.empty((k, x.shape[1]))
    centers[0] = x[rng.integers(n)]
    nearest = sqdist(centers[:1])[:, 0]
    for j in range(1, k):
        total = nearest.sum()
        if total > 0:  # D² sampling
            pick = min(int(np.searchsorted(np.cumsum(nearest), rng.random() * total, side="right")), n - 1)
        else:
            pick = int(rng.integers(n))
        centers[j] = x[pick]
        nearest = np.minimum(nearest, sqdist(centers[j:j + 1])[:, 0])

    assign = sqdist(centers).argmin(1)
    for _ in range(iterations):
        counts = np.bincount(assign, minlength=k)
        sums = np.zeros_like(centers)
        np.add.at(sums, assign, x)
        filled = counts > 0
        centers[filled] = sums[filled] / counts[filled, None]
        updated = sqdist(centers).argmin(1)
        if np.array_equal(updated, assign):
            break
        assign = updated
    return assign, centers


def kmeans_cells(labels: np.ndarray, embeddings: np.ndarray, clusters: int = 10, seed: int = 0,
                 iterations: int = 10) -> np.ndarray:
    """The (class, cluster) cell of each sample, as `class_position * clusters + cluster`.

    k-means runs within each class (classes in sorted label order), each
    class on its own child stream of `SeedSequence(seed)`.
    """
    labels = _to_numpy(labels)
    embeddings = np.asarray(_to_numpy(embeddings), dtype=np.float64)
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(-1)
    num_classes = int(inverse.max()) + 1
    streams = np.random.SeedSequence(seed).spawn(num_classes)
    cells = np.empty(len(labels), dtype=np.int64)
    for c in range(num_classes):
        members = np.flatnonzero(inverse == c)
        assign, _ = kmeans(embeddings[members], clusters, np.random.default_rng(streams[c]), iterations)
        cells[members] = c * clusters + assign
    return cells


# ------------------------------------------------------------------ the strategies
def _hardest(scores, budget, labels, seed, embeddings):
    """Keep the highest scores (ties broken by a seeded permutation)."""
    rank = priority(scores, "hardest", np.random.default_rng(seed))
    return np.flatnonzero(rank >= len(scores) - budget)


def _easiest(scores, budget, labels, seed, embeddings):
    """Keep the lowest scores (ties broken by a seeded permutation)."""
    rank = priority(scores, "easiest", np.random.default_rng(seed))
    return np.flatnonzero(rank >= len(scores) - budget)


def _random(scores, budget, labels, seed, embeddings):
    """A seeded uniform subset; the scores are ignored."""
    return np.random.default_rng(seed).choice(len(scores), size=budget, replace=False)


def _ccs(scores, budget, labels, seed, embeddings, beta, bins):
    """Coverage-centric coreset selection (Zheng et al., ICLR 2023, Algorithm 1).

    1. Prune the floor(beta * n) hardest samples (likely mislabeled or
       hopeless). If that would leave fewer than the budget, the cut shrinks
       to n - budget: the natural limit, where everything not cut is kept.
    2. Split what remains into `bins` equal-width score strata.
    3. `allocate` the budget across strata (smallest first, each an equal
       share of what is left), then sample uniformly within each stratum.
    """
    n = len(scores)
    rng = np.random.default_rng(seed)
    rank = priority(scores, "hardest", rng)
    cut = min(int(np.floor(round(beta * n, 9))), n - budget)
    pool = np.flatnonzero(rank < n - cut)
    strata = score_strata(scores[pool], bins)
    quotas = allocate(budget, np.bincount(strata, minlength=bins), rng)
    return pool[take_per_group(strata, rng.permutation(len(pool)), quotas)]


def _class_balanced(scores, budget, labels, seed, embeddings, order):
    """keep_ratio of every class (largest remainders), within a class by `order`."""
    rng = np.random.default_rng(seed)
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(-1)
    quotas = class_quotas(np.bincount(inverse), budget, rng)
    return take_per_group(inverse, priority(scores, order, rng), quotas)


def _kmeans_coverage(scores, budget, labels, seed, embeddings, clusters, order, iterations):
    """Per class, cover the k-means clusters of the embeddings evenly, within a cluster by `order`.

    Each class gets its class_balanced quota; `allocate` spreads it over the
    class's clusters as CCS spreads the budget over strata, so every
    non-empty cluster is represented whenever the quota is at least the
    number of non-empty clusters.
    """
    rng = np.random.default_rng(seed)
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(-1)
    quotas = class_quotas(np.bincount(inverse), budget, rng)
    cells = kmeans_cells(inverse, embeddings, clusters, seed, iterations)
    sizes = np.bincount(cells, minlength=len(quotas) * clusters).reshape(len(quotas), clusters)
    cell_quotas = np.concatenate([allocate(q, row, rng) for q, row in zip(quotas, sizes)])
    return take_per_group(cells, priority(scores, order, rng), cell_quotas)


_ORDER_OPTION = ("hardest", 'within a group, keep by "hardest", "easiest" or "random"')

register_strategy("hardest", _hardest, "keep the highest scores (ties broken by a seeded permutation)")
register_strategy("easiest", _easiest, "keep the lowest scores (ties broken by a seeded permutation)")
register_strategy("random", _random, "seeded uniform subset; ignores the scores")
register_strategy(
    "ccs", _ccs,
    "coverage-centric coreset selection (Zheng et al. 2023): cut the hardest beta, "
    "then sample evenly across equal-width score strata",
    options={"beta": (0.0, "fraction of hardest samples pruned first, 0 <= beta < 1"),
             "bins": (50, "number of equal-width score strata, >= 1")},
)
register_strategy(
    "class_balanced", _class_balanced,
    "keep_ratio of every class (exact total by largest remainders), within a class by order",
    options={"order": _ORDER_OPTION},
)
register_strategy(
    "kmeans_coverage", _kmeans_coverage,
    "per class, spread the class's quota evenly over k-means clusters of the surrogate's embeddings",
    needs_embeddings=True,
    options={"clusters": (10, "k-means clusters per class, >= 1"),
             "order": _ORDER_OPTION,
             "iterations": (10, "at most this many Lloyd iterations, >= 1")},
)
