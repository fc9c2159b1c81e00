"""Gradient coresets on last-layer per-sample gradients: CRAIG and GradMatch (weighted subsets), Glister."""
from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import solve_triangular
from scipy.optimize import nnls

from ..errors import ConfigError
from .base import Selection
from .blocks import block_rows, by_class, coreset, device, sq_dists, tensor
from .submodular import FacilityLocation, greedy as maximise


@coreset
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
        g = g_all[torch.as_tensor(members, device=g_all.device)]
        c = 2 * float((g - g.mean(0)).norm(dim=1).max()) + 1e-12

        def similarity(a, b):
            return c - sq_dists(a, b).sqrt_()

        chosen = maximise(FacilityLocation(g, similarity), len(g), quota, greedy, epsilon, rng)
        centers = g[torch.as_tensor(chosen)]
        nearest = torch.empty(len(g), dtype=torch.long, device=g.device)
        step = block_rows(quota)
        for start in range(0, len(g), step):
            nearest[start:start + step] = sq_dists(g[start:start + step], centers).argmin(1)
        return Selection(chosen, np.bincount(nearest.cpu().numpy(), minlength=quota).astype(np.float64))

    return by_class(pick, budget, labels, seed, per_class)


def omp_nonnegative(a: np.ndarray, target: np.ndarray, k: int, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal matching pursuit with non-negative, ridge-regularised weights: k columns of `a` (D, n).

    Step t adds the unchosen column most correlated with the residual, then refits all
    weights by min ‖A_S w − target‖² + λ‖w‖², w ≥ 0. With λ > 0 the refit is NNLS on the
    t x t Cholesky form: M = A_SᵀA_S + λI = LLᵀ gives ‖Lᵀw − L⁻¹A_Sᵀtarget‖², the same
    objective up to a constant, built from a Gram matrix grown one column per step (not
    NNLS on the (D + t) x t stack [A_S; √λ I], which λ = 0 still uses). Returns the columns
    in pick order and their weights.
    """
    chosen: list[int] = []
    residual = target.copy()
    weights = np.zeros(0)
    free = np.ones(a.shape[1], dtype=bool)
    gram = np.zeros((k, k))
    rhs = np.zeros(k)
    for t in range(k):
        corr = np.where(free, a.T @ residual, -np.inf)
        j = int(np.argmax(corr))
        chosen.append(j)
        free[j] = False
        cols = a[:, chosen]
        if lam > 0:
            gram[t, :t + 1] = gram[:t + 1, t] = cols.T @ a[:, j]
            rhs[t] = a[:, j] @ target
            lower = np.linalg.cholesky(gram[:t + 1, :t + 1] + lam * np.eye(t + 1))
            weights, _ = nnls(lower.T, solve_triangular(lower, rhs[:t + 1], lower=True))
        else:
            weights, _ = nnls(cols, target)
        residual = target - cols @ weights
    return np.asarray(chosen, dtype=np.int64), weights


@coreset
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


def holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, class-stratified holdout: round(fraction·size) of each class (at least 1), sorted."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6C15]))
    out = [rng.choice(m, max(1, round(fraction * len(m))), replace=False)
           for m in (np.flatnonzero(labels == c) for c in np.unique(labels))]
    return np.sort(np.concatenate(out))


def _logits_and_features(g: torch.Tensor, y: torch.Tensor, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert g = (p − onehot(y)) ⊗ [e, 1]: the bias block is p − onehot(y), so log p are logits (up to a
    constant), and e = g[y, :d] / (p_y − 1); samples with p_y within 1e-6 of 1 (no gradient) get e = 0."""
    g = g.reshape(len(g), classes, -1)
    delta = g[:, :, -1]
    p = (delta + torch.nn.functional.one_hot(y, classes).to(g.dtype)).clamp_min(1e-12)
    at = torch.arange(len(g), device=g.device)
    rows = g[at, y, :-1]
    scale = delta[at, y]
    features = torch.where(scale[:, None].abs() > 1e-6, rows / scale[:, None].clamp_max(-1e-6), 0.0)
    return p.log(), features


@coreset
def glister(scores, budget, labels, seed, embeddings, gradients, per_class, validation, eta):
    """GLISTER-ONLINE (Killamsetty et al., AAAI 2021; decile-team/cords `glisterstrategy.py`, DeepCore
    `methods/glister.py`), on the last layer.

    Greedy: add the sample whose gradient best aligns with the validation gradient,
    gain g_i · ∇L_val(θ_S) (the one-step Taylor approximation of the drop in validation
    loss), where θ_S = θ − η·mean(g_S) moves only the last layer, so the validation
    logits are updated exactly and the validation gradient recomputed after each pick.
    The validation set is a seeded class-stratified holdout of the training set
    (`validation`, default 10 %), never the test set. Differences: logits and features
    of the holdout are recovered from its gradient embeddings (unprojected gradients
    only); holdout samples stay selectable, so any keep ratio is valid.
    """
    g_all = torch.as_tensor(np.asarray(gradients, dtype=np.float64), device=device())
    y_all = torch.as_tensor(labels, dtype=torch.long, device=g_all.device)
    classes = int(labels.max()) + 1
    if g_all.shape[1] % classes:
        raise ConfigError(f"glister needs unprojected gradient embeddings (C·(d+1) columns, C={classes}); got "
                          f"{g_all.shape[1]}: raise surrogate.gradient_mb so they are not projected")
    val = torch.as_tensor(holdout(labels, validation, seed), device=g_all.device)
    z_val, e_val = _logits_and_features(g_all[val], y_all[val], classes)
    e_val = torch.cat([e_val, torch.ones(len(val), 1, dtype=e_val.dtype, device=e_val.device)], 1)
    onehot = torch.nn.functional.one_hot(y_all[val], classes).to(e_val.dtype)

    def val_gradient(step: torch.Tensor) -> torch.Tensor:
        z = z_val - eta * e_val @ step.reshape(classes, -1).T
        return ((torch.softmax(z, 1) - onehot)[:, :, None] * e_val[:, None, :]).mean(0).flatten()

    def pick(members, quota, rng):
        g = g_all[torch.as_tensor(members, device=g_all.device)]
        taken = torch.zeros(len(g), dtype=torch.bool, device=g.device)
        total = torch.zeros(g.shape[1], dtype=g.dtype, device=g.device)
        target = val_gradient(total)
        chosen = np.empty(quota, dtype=np.int64)
        for t in range(quota):
            j = int(torch.argmax((g @ target).masked_fill_(taken, -float("inf"))))
            chosen[t], taken[j] = j, True
            total += g[j]
            target = val_gradient(total / (t + 1))
        return chosen

    return by_class(pick, budget, labels, seed, per_class)
