"""Coverage strategies: CCS's score strata, class balance, and k-means cells of the embeddings."""
from __future__ import annotations

import numpy as np

from .base import _to_numpy, allocate, class_quotas, priority, score_strata, take_per_group


def ccs(scores, budget, labels, seed, embeddings, beta, bins):
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


def class_balanced(scores, budget, labels, seed, embeddings, order):
    """keep_ratio of every class (largest remainders), within a class by `order`."""
    rng = np.random.default_rng(seed)
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(-1)
    quotas = class_quotas(np.bincount(inverse), budget, rng)
    return take_per_group(inverse, priority(scores, order, rng), quotas)


def kmeans_coverage(scores, budget, labels, seed, embeddings, clusters, order, iterations):
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
