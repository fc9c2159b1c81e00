"""Gradient coresets on last-layer per-sample gradients: CRAIG and GradMatch (weighted subsets), Glister."""
from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import cho_solve, solve_triangular
from scipy.optimize import nnls

from ..errors import ConfigError
from .base import Selection
from .blocks import block_rows, by_class, coreset, device, sq_dists, tensor
from .submodular import FacilityLocation
from .submodular import greedy as maximise


@coreset
def craig(scores, budget, labels, seed, embeddings, gradients, per_class, greedy, epsilon, plus_one=False):
    """CRAIG (Mirzasoleiman, Bilmes & Leskovec, ICML 2020; baharanm/craig `craig.py`, DeepCore `methods/craig.py`).

    Per class, facility location on the gradients with similarity c − ‖g_i − g_j‖
    (CRAIG's `max(D) − D`; any c ≥ the largest distance gives the same picks, so c is
    twice the largest distance to the class mean, no pairwise pass needed). Each
    medoid's weight is the number of class samples nearest to it (baharanm/craig), so the
    weights of a class sum to its size; `plus_one` adds 1 to each, as DeepCore's craig.py.
    Differences: distances come in row blocks, not a full matrix; greedy lazy by default
    (CRAIG's lazy heap), stochastic on request.
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
        sizes = np.bincount(nearest.cpu().numpy(), minlength=quota).astype(np.float64)
        return Selection(chosen, sizes + 1.0 if plus_one else sizes)

    return by_class(pick, budget, labels, seed, per_class)


def _grow_cholesky(lower: np.ndarray, m: np.ndarray, passive: list[int], j: int) -> np.ndarray:
    """The Cholesky factor of m[P+j, P+j] from that of m[P, P]: one triangular solve, O(|P|²)."""
    t = len(passive)
    out = np.zeros((t + 1, t + 1))
    if t:
        out[:t, :t] = lower
        out[t, :t] = solve_triangular(lower, m[passive, j], lower=True)
    out[t, t] = np.sqrt(max(m[j, j] - out[t, :t] @ out[t, :t], 1e-300))
    return out


def _shrink_cholesky(lower: np.ndarray, m: np.ndarray, passive: list[int], kept: np.ndarray) -> np.ndarray:
    """The Cholesky factor of m[P', P'], P' the passive columns where `kept`: rows before the first
    dropped one keep their factor rows; the rows after it keep their first columns too, and their
    trailing block is the factor of its Schur complement, O(r³) in those r rows, not in |P|."""
    first = int(np.argmin(kept))
    rest = np.flatnonzero(kept)[np.flatnonzero(kept) > first]
    out = np.zeros((first + len(rest),) * 2)
    out[:first, :first] = lower[:first, :first]
    if len(rest):
        idx = np.asarray(passive)[rest]
        cross = lower[rest, :first]
        out[first:, :first] = cross
        out[first:, first:] = np.linalg.cholesky(m[np.ix_(idx, idx)] - cross @ cross.T)
    return out


def nnls_gram(m: np.ndarray, b: np.ndarray, w: np.ndarray, passive: list[int],
              lower: np.ndarray) -> tuple[np.ndarray, list[int], np.ndarray]:
    """min ½wᵀMw − bᵀw subject to w ≥ 0, M symmetric positive definite: Lawson & Hanson's active set
    (1974, ch. 23) on the normal equations, warm-started from w ≥ 0 that is positive on `passive` and
    zero off it, `lower` the Cholesky factor of M[P, P]. Returns (w, passive, lower) at the optimum.

    Why not scipy's `nnls`: it starts from w = 0 each call, so OMP's t-th refit costs O(t³) again;
    warm-started, a refit that only adds the new column is one O(t²) factor update. The optimum is
    unique (M is positive definite), so it is scipy's, which the tests check. A column leaving the
    passive set refactors only the rows after it. Should the active set cycle (rounding), scipy
    solves the problem from scratch.
    """
    n = len(b)
    tol = 1e-12 * max(1.0, float(np.abs(b).max()), float(np.abs(m).max()))
    for _ in range(3 * n + 10):
        while passive:  # the optimum on the passive set, stepping back to stay feasible
            p = np.asarray(passive)
            s = np.zeros(n)
            s[p] = cho_solve((lower, True), b[p])
            if s[p].min() > 0:
                w = s
                break
            neg = p[s[p] <= 0]  # move from w towards s until the first of these reaches 0
            step = w[neg] / np.maximum(w[neg] - s[neg], 1e-300)
            w = w + float(step.min()) * (s - w)
            kept = w[p] > tol
            kept[np.flatnonzero(p == neg[np.argmin(step)])] = False
            w[p[~kept]] = 0.0
            lower = _shrink_cholesky(lower, m, passive, kept)
            passive = list(p[kept])
        gain = b - m @ w  # minus the gradient: ≤ 0 off the passive set at the optimum
        gain[passive] = -np.inf
        j = int(np.argmax(gain))
        if gain[j] <= tol:
            return w, passive, lower
        lower = _grow_cholesky(lower, m, passive, j)
        passive = [*passive, j]
    lower = np.linalg.cholesky(m)
    w = nnls(lower.T, solve_triangular(lower, b, lower=True))[0]
    passive = list(np.flatnonzero(w > 0))
    return w, passive, np.linalg.cholesky(m[np.ix_(passive, passive)]) if passive else np.zeros((0, 0))


def omp_nonnegative(a: np.ndarray, target: np.ndarray, k: int, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal matching pursuit with non-negative, ridge-regularised weights: k columns of `a` (D, n).

    Step t adds the unchosen column most correlated with the residual, then refits all
    weights by min ‖A_S w − target‖² + λ‖w‖², w ≥ 0. With λ > 0 that is min ½wᵀMw − bᵀw,
    M = A_SᵀA_S + λI, b = A_Sᵀtarget, over a Gram matrix grown one column per step and
    solved by `nnls_gram`, warm-started from the previous step's weights; λ = 0 uses
    scipy's NNLS on A_S itself. Returns the columns in pick order and their weights.
    """
    chosen: list[int] = []
    residual = target.copy()
    weights = np.zeros(0)
    free = np.ones(a.shape[1], dtype=bool)
    cols = np.zeros((a.shape[0], k), order="F")  # columns contiguous: the slices below are too
    gram = np.zeros((k, k))
    rhs = np.zeros(k)
    passive: list[int] = []
    lower = np.zeros((0, 0))
    for t in range(k):
        corr = np.where(free, a.T @ residual, -np.inf)
        j = int(np.argmax(corr))
        chosen.append(j)
        free[j] = False
        cols[:, t] = a[:, j]
        if lam > 0:
            gram[t, :t + 1] = gram[:t + 1, t] = cols[:, :t + 1].T @ a[:, j]
            gram[t, t] += lam
            rhs[t] = a[:, j] @ target
            weights, passive, lower = nnls_gram(gram[:t + 1, :t + 1], rhs[:t + 1], np.append(weights, 0.0),
                                                passive, lower)
        else:
            weights, _ = nnls(cols[:, :t + 1], target)
        residual = target - cols[:, :t + 1] @ weights
    return np.asarray(chosen, dtype=np.int64), weights


@coreset
def gradmatch(scores, budget, labels, seed, embeddings, gradients, per_class, omp_lam, zero_weights="keep"):
    """GradMatch (Killamsetty et al., ICML 2021; decile-team/cords `gradmatchstrategy.py`, DeepCore
    `methods/gradmatch.py`).

    Per class, orthogonal matching pursuit picks samples and non-negative weights whose
    weighted gradient sum matches the class's gradient sum, ‖Σ_S w_j g_j − Σ_i g_i‖,
    with a ridge λ = `omp_lam` (DeepCore's 1), every refit a non-negative least squares in
    float64. OMP always takes the whole budget; a pick whose weight ends at 0 stays in the
    kept set with weight 0 (`zero_weights = "keep"`), or is replaced by a sample drawn at
    random from those not kept, with weight 1 (`"fill"`, cords' random fill). How cords and
    DeepCore differ: the method's page.
    """
    g_all = np.asarray(gradients, dtype=np.float64)

    def pick(members, quota, rng):
        a = g_all[members].T
        chosen, weights = omp_nonnegative(a, a.sum(1), quota, omp_lam)
        return Selection(chosen, weights)

    out = by_class(pick, budget, labels, seed, per_class)
    return random_fill(out, len(labels), seed) if zero_weights == "fill" else out


def random_fill(sel: Selection, n: int, seed: int) -> Selection:
    """cords' fill: each kept index whose weight is 0 replaced by one drawn uniformly (seeded) from the
    samples not kept, with weight 1; the other picks keep their places and weights."""
    zero = np.flatnonzero(sel.weights == 0)
    if not zero.size:
        return sel
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF111]))
    indices, weights = sel.indices.copy(), sel.weights.copy()
    indices[zero] = rng.choice(np.setdiff1d(np.arange(n), indices), size=zero.size, replace=False)
    weights[zero] = 1.0
    return Selection(indices, weights)


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
    (`validation`, default 10 %), never the test set; with `per_class` each class is
    matched against its own holdout samples only (DeepCore's `balance`, cords' PerClass).
    Differences: logits and features of the holdout are recovered from its gradient
    embeddings (unprojected gradients only); holdout samples stay selectable, so any keep
    ratio is valid.
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

    def val_gradient(step: torch.Tensor, z0: torch.Tensor, e: torch.Tensor, y1: torch.Tensor) -> torch.Tensor:
        z = z0 - eta * e @ step.reshape(classes, -1).T
        return ((torch.softmax(z, 1) - y1).T @ e).flatten() / len(e)  # the mean of (p − y) ⊗ [e, 1]

    def pick(members, quota, rng):
        g = g_all[torch.as_tensor(members, device=g_all.device)]
        rows = y_all[val] == int(labels[members[0]]) if per_class else slice(None)  # the class's own holdout
        own = z_val[rows], e_val[rows], onehot[rows]
        taken = torch.zeros(len(g), dtype=torch.bool, device=g.device)
        total = torch.zeros(g.shape[1], dtype=g.dtype, device=g.device)
        target = val_gradient(total, *own)
        chosen = np.empty(quota, dtype=np.int64)
        for t in range(quota):
            j = int(torch.argmax((g @ target).masked_fill_(taken, -float("inf"))))
            chosen[t], taken[j] = j, True
            total += g[j]
            target = val_gradient(total / (t + 1), *own)
        return chosen

    return by_class(pick, budget, labels, seed, per_class)
