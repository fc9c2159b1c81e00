"""SemDeDup (Abbas et al. 2023; facebookresearch/SemDeDup): drop the semantic near-duplicates of kept samples.

As the reference does it:
1. normalise the embeddings to the unit sphere and cluster them with spherical
   k-means (faiss, `clusters` centroids, by default one per 1,000 samples,
   `iterations` iterations, seeded), each sample assigned to its nearest centroid
   by cosine (clustering/clustering.py);
2. order each cluster by cosine distance to its centroid, farthest first ("hard",
   the reference's default `keep_hard`; "easy" reverses it, "random" shuffles it:
   sort_clusters.py, semdedup.py's `which_to_keep`);
3. within a cluster, M_j = max(0, max_{i before j} cos(e_i, e_j)): the largest
   similarity of sample j to any sample before it in that order (the upper
   triangle's column maximum in semdedup.py); a sample with M_j > 1 − ε is a
   duplicate and is dropped, so of each group of duplicates the first is kept.

The budget: with a keep ratio r (the usual), the b = keep_count(r, n) samples with
the smallest M are kept, which is the reference at the ε that keeps b (ties at the
cut broken by a seeded permutation); with the `epsilon` option (> 0), exactly the
samples with M ≤ 1 − ε are kept, and the run's keep ratio must be that fraction
(`keep_ratio_at` computes it). The scores are not used.

Similarities are float64 dot products of the normalised embeddings, in row blocks
of at most `BLOCK_NUMBERS` numbers, so no cluster's n_c × n_c matrix is held whole.
"""
from __future__ import annotations

import faiss
import numpy as np

from ..errors import ConfigError
from .base import keep_count, priority

BLOCK_NUMBERS = 1 << 24  # similarities held at once per block (128 MB of float64)
PER_CLUSTER = 1000  # samples per k-means cluster when `clusters` is not given
# faiss's OpenMP threads during the k-means: one, as the coresets' torch threads (blocks.py), so a shared machine's
# oversubscription cannot slow it (1,500 × 784, 7 centroids, 100 iterations: 0.24 s on one thread, 1.6 s on two at
# load average 11), and the clustering does not depend on the machine's thread count
FAISS_THREADS = 1
ORDERS = ("hard", "easy", "random")


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """The embeddings normalised to unit length (float64); a zero row stays zero."""
    emb = np.asarray(embeddings, dtype=np.float64)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def cluster_count(clusters: int | None, n: int) -> int:
    """k: `clusters` (at most n), or (0 or None) one cluster per `PER_CLUSTER` samples, at least 1."""
    return min(int(clusters), n) if clusters else max(1, round(n / PER_CLUSTER))


def spherical_kmeans(unit: np.ndarray, clusters: int | None, iterations: int,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(cluster of each row, its cosine to that cluster's centroid): faiss's spherical k-means on the unit rows, each
    row assigned to the centroid of largest inner product, as the reference's `compute_centroids`."""
    x = np.ascontiguousarray(unit, dtype=np.float32)
    k = cluster_count(clusters, len(x))
    km = faiss.Kmeans(x.shape[1], k, niter=int(iterations), seed=int(seed), spherical=True,
                      min_points_per_centroid=1)  # no warning below 39 points per centroid; max stays faiss's 256
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(FAISS_THREADS)
    try:
        km.train(x)
        similarity, nearest = km.index.search(x, 1)
    finally:
        faiss.omp_set_num_threads(threads)
    return nearest[:, 0].astype(np.int64), similarity[:, 0].astype(np.float64)


def cluster_order(assign: np.ndarray, to_centroid: np.ndarray, keep: str, seed: int) -> list[np.ndarray]:
    """Each non-empty cluster's members (in cluster order) in the reference's order: by cosine distance to the
    centroid, farthest first ("hard", ties by index), that list reversed ("easy"), or shuffled by a seeded
    generator, one permutation per cluster ("random")."""
    order = np.lexsort((np.arange(len(assign)), to_centroid, assign))  # by cluster, then by distance descending
    groups = np.split(order, np.flatnonzero(np.diff(assign[order])) + 1) if len(order) else []
    if keep == "easy":
        return [members[::-1] for members in groups]
    if keep == "random":
        rng = np.random.default_rng(seed)
        return [members[rng.permutation(len(members))] for members in groups]
    return groups


def earlier_max_similarity(unit: np.ndarray) -> np.ndarray:
    """M_j = max(0, max_{i < j} u_i · u_j) for rows in order, in row blocks (M_0 = 0)."""
    m = len(unit)
    out = np.zeros(m)
    step = max(1, BLOCK_NUMBERS // max(1, m))
    for s in range(1, m, step):
        e = min(m, s + step)
        sims = unit[s:e] @ unit[:e].T  # (block, e): row j against every i < e
        sims[np.arange(e)[None, :] >= np.arange(s, e)[:, None]] = 0.0  # only i < j count; zeros as triu's
        out[s:e] = np.maximum(sims.max(1), 0.0)
    return out


def duplicate_similarity(embeddings: np.ndarray, clusters: int | None = None, iterations: int = 100,
                         keep: str = "hard", seed: int = 0) -> np.ndarray:
    """M per sample (aligned with the embeddings): its largest cosine similarity to a sample before it in its
    cluster's order, 0 for the first of each cluster; SemDeDup drops the samples with M > 1 − ε."""
    if keep not in ORDERS:
        raise ConfigError(f"semdedup keep = {keep!r} is unknown; use one of {', '.join(ORDERS)}")
    unit = unit_rows(embeddings)
    assign, to_centroid = spherical_kmeans(unit, clusters, iterations, seed)
    out = np.zeros(len(unit))
    for members in cluster_order(assign, to_centroid, keep, seed):
        out[members] = earlier_max_similarity(unit[members])
    return out


def keep_ratio_at(embeddings: np.ndarray, epsilon: float, clusters: int | None = None, iterations: int = 100,
                  keep: str = "hard", seed: int = 0) -> float:
    """The keep ratio SemDeDup at `epsilon` gives on these embeddings: the fraction with M ≤ 1 − ε."""
    m = duplicate_similarity(embeddings, clusters, iterations, keep, seed)
    return float(np.count_nonzero(m <= 1.0 - epsilon)) / len(m)


def semdedup(scores, budget, labels, seed, embeddings, clusters: int | None = None, iterations: int = 100,
             keep: str = "hard", epsilon: float = 0.0):
    """Keep the `budget` samples least similar to an earlier sample of their k-means cluster (SemDeDup); with
    `epsilon` > 0, exactly those whose similarity to every earlier sample of their cluster is at most 1 − ε."""
    m = duplicate_similarity(embeddings, clusters, iterations, keep, seed)
    if not epsilon:
        rank = priority(m, "easiest", np.random.default_rng(seed))
        return np.flatnonzero(rank >= len(m) - budget)
    kept = np.flatnonzero(m <= 1.0 - epsilon)
    if len(kept) != budget:
        ratio = len(kept) / len(m)
        raise ConfigError(f"semdedup with epsilon = {epsilon:g} keeps {len(kept)} of {len(m)} samples, not "
                          f"{budget}: set the keep ratio to {ratio!r} (keep_count gives {keep_count(ratio, len(m))})"
                          ", or leave epsilon unset to cut at the keep ratio")
    return kept
