"""Geometric coresets: k-center greedy and herding on the embeddings, contextual diversity on the predictions; torch, one pick per step."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from .blocks import by_class, coreset, device, tensor


@coreset
def kcenter_greedy(scores, budget, labels, seed, embeddings, per_class, space="embeddings", gradients=None):
    """k-center greedy (Sener & Savarese, ICLR 2018; DeepCore `methods/kcentergreedy.py`).

    Farthest-first traversal: start from a seeded random sample, then repeatedly add
    the sample farthest (Euclidean) from its nearest chosen center, which is a
    2-approximation of the minimax covering radius. Each step is one distance
    vector against the new center, so memory stays O(n); the samples are held
    transposed as well, since c @ xᵀ over contiguous rows is about 4x faster on a CPU
    than x @ c. `space` = "embeddings" (the penultimate features, DeepCore's) or
    "gradients" (the last-layer gradient embeddings, BADGE's space: Ash et al.,
    ICLR 2020). Differences: the first center is drawn from `seed`
    (DeepCore draws it from numpy's global state); one distance vector replaces
    DeepCore's budget × n distance matrix; `per_class` (default false, like DeepCore's
    `balance=False`) splits the budget over classes in proportion to their sizes.
    """
    x_all = tensor(gradients if space == "gradients" else embeddings)

    def pick(members, quota, rng):
        x = x_all[torch.as_tensor(members, device=x_all.device)]
        xt = x.T.contiguous()
        chosen = np.empty(quota, dtype=np.int64)
        chosen[0] = rng.integers(len(members))
        x_sq = (x * x).sum(1)
        nearest = torch.full((len(x),), float("inf"), dtype=x.dtype, device=x.device)
        for t in range(1, quota + 1):
            c = x[int(chosen[t - 1])]
            nearest = torch.minimum(nearest, (x_sq + c @ c).sub_(2 * (c @ xt)).clamp_min_(0))
            if t < quota:
                chosen[t] = int(torch.argmax(nearest))
        return chosen

    return by_class(pick, budget, labels, seed, per_class)


@coreset
def herding(scores, budget, labels, seed, embeddings, per_class, pick="nearest"):
    """Kernel herding on the embeddings (Welling, ICML 2009; DeepCore `methods/herding.py`).

    Step t picks the unchosen sample x that brings the running sum closest to (t + 1)·μ,
    minimising ‖(t + 1)·μ − (Σ chosen + x)‖, so the mean of the chosen samples tracks
    the mean μ of all (Welling's herding: `pick = "nearest"`, the default). DeepCore's
    herding.py takes the argmax of that distance instead (the farthest sample):
    `pick = "farthest"` reproduces it. Deterministic, ties to the lower index. The distance
    is expanded as ‖x‖² − 2x·target (+ a constant), one vector-matrix product per step
    instead of an n × d difference.
    """
    x_all = tensor(embeddings)
    farthest = pick == "farthest"

    def take(members, quota, rng):
        x = x_all[torch.as_tensor(members, device=x_all.device)]
        xt = x.T.contiguous()
        x_sq = (x * x).sum(1)
        mu = x.mean(0)
        total = torch.zeros_like(mu)
        taken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        chosen = np.empty(quota, dtype=np.int64)
        for t in range(quota):
            target = (t + 1) * mu - total
            dist = x_sq - 2 * (target @ xt)
            if farthest:
                j = int(torch.argmax(dist.masked_fill_(taken, -float("inf"))))
            else:
                j = int(torch.argmin(dist.masked_fill_(taken, float("inf"))))
            chosen[t], taken[j] = j, True
            total += x[j]
        return chosen

    return by_class(take, budget, labels, seed, per_class)


@coreset
def contextual_diversity(scores, budget, labels, seed, embeddings, gradients, per_class):
    """Contextual diversity (Agarwal et al., ECCV 2020; DeepCore `methods/contextualdiversity.py`).

    k-center greedy where the distance from a sample to a center is DeepCore's `_metric`,
    the symmetric KL divergence ½KL(p_i ‖ p_c) + ½KL(p_c ‖ p_i) = ½ Σ_k (p_ik − p_ck)(log p_ik −
    log p_ck) between the surrogate's softmax outputs. The softmax outputs come from the
    gradient embeddings (their bias block is p − onehot(y)), so no extra pass is needed. Each
    step is two (n, C) products with the new center. First center drawn from `seed`; per class
    by default (DeepCore's `balance = True`).
    """
    g = torch.as_tensor(np.asarray(gradients, dtype=np.float64), device=device())
    classes = int(labels.max()) + 1
    if g.shape[1] % classes:
        raise ConfigError(f"contextual_diversity needs unprojected gradient embeddings (C·(d+1) columns, "
                          f"C={classes}); raise surrogate.gradient_mb so they are not projected")
    delta = g.reshape(len(g), classes, -1)[:, :, -1]
    onehot = torch.nn.functional.one_hot(torch.as_tensor(labels, device=g.device), classes).double()
    p_all = (delta + onehot).clamp_min(1e-12)
    p_all = p_all / p_all.sum(1, keepdim=True)

    def pick(members, quota, rng):
        p = p_all[torch.as_tensor(members, device=p_all.device)]
        log_p = p.log()
        entropy = (p * log_p).sum(1)  # Σ_k p_k log p_k
        chosen = np.empty(quota, dtype=np.int64)
        chosen[0] = rng.integers(len(members))
        nearest = torch.full((len(p),), float("inf"), dtype=p.dtype, device=p.device)
        for t in range(1, quota + 1):
            c = int(chosen[t - 1])
            kl = 0.5 * (entropy + entropy[c] - p @ log_p[c] - log_p @ p[c])  # ½KL(p_i‖p_c) + ½KL(p_c‖p_i)
            nearest = torch.minimum(nearest, kl)
            if t < quota:
                chosen[t] = int(torch.argmax(nearest))
        return chosen

    return by_class(pick, budget, labels, seed, per_class)
