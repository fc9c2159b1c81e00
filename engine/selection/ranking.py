"""Ranking strategies: keep the hardest, the easiest, or a seeded uniform subset."""
from __future__ import annotations

import numpy as np

from .base import priority


def hardest(scores, budget, labels, seed, embeddings):
    """Keep the highest scores (ties broken by a seeded permutation)."""
    rank = priority(scores, "hardest", np.random.default_rng(seed))
    return np.flatnonzero(rank >= len(scores) - budget)


def easiest(scores, budget, labels, seed, embeddings):
    """Keep the lowest scores (ties broken by a seeded permutation)."""
    rank = priority(scores, "easiest", np.random.default_rng(seed))
    return np.flatnonzero(rank >= len(scores) - budget)


def random(scores, budget, labels, seed, embeddings):
    """A seeded uniform subset; the scores are ignored."""
    return np.random.default_rng(seed).choice(len(scores), size=budget, replace=False)
