"""Geometric coresets on the surrogate's embeddings: k-center greedy and herding, in torch, one pick per step."""
from __future__ import annotations

import numpy as np
import torch

from .blocks import by_class, tensor


def kcenter_greedy(scores, budget, labels, seed, embeddings, per_class):
    """k-center greedy (Sener & Savarese, ICLR 2018; DeepCore `methods/kcentergreedy.py`).

    Farthest-first traversal: start from a seeded random sample, then repeatedly add
    the sample farthest (Euclidean) from its nearest chosen center, which is a
    2-approximation of the minimax covering radius. Each step is one distance
    vector against the new center, so memory stays O(n). Differences: the first
    center is drawn from `seed` (DeepCore draws it from numpy's global state);
    `per_class` (default false, like DeepCore's `balance=False`) splits the budget
    over classes in proportion to their sizes.
    """
    x_all = tensor(embeddings)

    def pick(members, quota, rng):
        x = x_all[torch.as_tensor(members)]
        chosen = np.empty(quota, dtype=np.int64)
        chosen[0] = rng.integers(len(members))
        x_sq = (x * x).sum(1)
        nearest = torch.full((len(x),), float("inf"))
        for t in range(1, quota + 1):
            c = x[int(chosen[t - 1])]
            nearest = torch.minimum(nearest, (x_sq - 2 * (x @ c) + c @ c).clamp_min_(0))
            if t < quota:
                chosen[t] = int(torch.argmax(nearest))
        return chosen

    return by_class(pick, budget, labels, seed, per_class)


def herding(scores, budget, labels, seed, embeddings, per_class):
    """Kernel herding on the embeddings (Welling, ICML 2009; DeepCore `methods/herding.py`).

    Step t picks the unchosen sample x that brings the running sum closest to t·μ,
    minimising ‖(t + 1)·μ − (Σ chosen + x)‖, so the mean of the chosen samples tracks
    the mean μ of all. As DeepCore, deterministic and `per_class` false by default;
    ties go to the lower index (argmin), DeepCore's too.
    """
    x_all = tensor(embeddings)

    def pick(members, quota, rng):
        x = x_all[torch.as_tensor(members)]
        mu = x.mean(0)
        total = torch.zeros_like(mu)
        taken = torch.zeros(len(x), dtype=torch.bool)
        chosen = np.empty(quota, dtype=np.int64)
        for t in range(quota):
            target = (t + 1) * mu - total
            dist = ((x - target) ** 2).sum(1).masked_fill_(taken, float("inf"))
            j = int(torch.argmin(dist))
            chosen[t], taken[j] = j, True
            total += x[j]
        return chosen

    return by_class(pick, budget, labels, seed, per_class)
