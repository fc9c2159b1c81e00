"""Gradient-matching coresets on last-layer per-sample gradients: CRAIG and GradMatch (weighted subsets)."""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import nnls

from .base import Selection
from .blocks import block_rows, by_class, sq_dists, tensor
from .submodular import FacilityLocation, greedy as maximise


def craig(scores, budget, labels, seed, embeddings, gradients, per_class, greedy, epsilon):
    """CRAIG (Mirzasoleiman, Bilmes & Leskovec, ICML 2020; baharanm/craig `craig.py`, DeepCore `methods/craig.py`).

    Per class, facility location on the gradients with similarity c − ‖g_i − g_j‖
    (CRAIG's `max(D) − D`; any c ≥ the largest distance gives the same picks, so c is
    twice the largest distance to the class mean, no pairwise pass needed). Each
    medoid's weight is the number of class samples nearest to it, so the weights of
    a class sum to its size. Differences: distances come in row blocks, not a full
    matrix; greedy lazy by default (CRAIG's lazy heap), stochastic on request.
    """
    g_all = tensor(gradients)

    def pick(members, quota, rng):
        g = g_all[torch.as_tensor(members)]
        c = 2 * float((g - g.mean(0)).norm(dim=1).max()) + 1e-12

        def similarity(a, b):
            return c - sq_dists(a, b).sqrt_()

        chosen = maximise(FacilityLocation(g, similarity), len(g), quota, greedy, epsilon, rng)
        centers = g[torch.as_tensor(chosen)]
        nearest = torch.empty(len(g), dtype=torch.long)
        step = block_rows(quota)
        for start in range(0, len(g), step):
            nearest[start:start + step] = sq_dists(g[start:start + step], centers).argmin(1)
        return Selection(chosen, np.bincount(nearest.numpy(), minlength=quota).astype(np.float64))

    return by_class(pick, budget, labels, seed, per_class)


def omp_nonnegative(a: np.ndarray, target: np.ndarray, k: int, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal matching pursuit with non-negative, ridge-regularised weights: k columns of `a` (D, n).

    Step t adds the unchosen column most correlated with the residual, then refits all
    weights by min ‖A_S w − target‖² + λ‖w‖², w ≥ 0 (NNLS on [A_S; √λ I]). Returns the
    columns in pick order and their weights.
    """
    chosen: list[int] = []
    residual = target.copy()
    weights = np.zeros(0)
    free = np.ones(a.shape[1], dtype=bool)
    for _ in range(k):
        corr = np.where(free, a.T @ residual, -np.inf)
        j = int(np.argmax(corr))
        chosen.append(j)
        free[j] = False
        cols = a[:, chosen]
        weights, _ = nnls(np.vstack([cols, np.sqrt(lam) * np.eye(len(chosen))]),
                          np.concatenate([target, np.zeros(len(chosen))]))
        residual = target - cols @ weights
    return np.asarray(chosen, dtype=np.int64), weights


def gradmatch(scores, budget, labels, seed, embeddings, gradients, per_class, omp_lam):
    """GradMatch (Killamsetty et al., ICML 2021; decile-team/cords `gradmatchstrategy.py`, DeepCore
    `methods/gradmatch.py`).

    Per class, orthogonal matching pursuit picks samples and non-negative weights whose
    weighted gradient sum matches the class's gradient sum, ‖Σ_S w_j g_j − Σ_i g_i‖,
    with DeepCore's ridge λ = 1 (`omp_lam`). Differences: DeepCore stops once the residual is below
    a tolerance and fills the budget at random; here OMP always takes the whole budget
    (later picks may get weight 0), and NNLS is scipy's, in float64.
    """
    g_all = np.asarray(gradients, dtype=np.float64)

    def pick(members, quota, rng):
        a = g_all[members].T
        chosen, weights = omp_nonnegative(a, a.sum(1), quota, omp_lam)
        return Selection(chosen, weights)

    return by_class(pick, budget, labels, seed, per_class)
