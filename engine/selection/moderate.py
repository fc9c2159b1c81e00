"""The `moderate` strategy (Xia et al., ICLR 2023): keep the band of samples around the median score."""
from __future__ import annotations

import numpy as np

from .base import priority


def moderate(scores, budget, labels, seed, embeddings):
    """Keep the `budget` samples whose scores rank closest to the median, a band centred on it.

    Moderate-DS (tmllab/2023_ICLR_Moderate-DS, `selection.py`, `get_prune_idx`) sorts
    all samples by their distance to the class median and prunes below the
    (0.5 − r/2) and above the (0.5 + r/2) quantiles; here the band is exactly
    `budget` wide and starts at round((n − budget) / 2). Ties are broken by a seeded
    permutation. Meant for the `moderate` score, usable with any.
    """
    n = len(scores)
    rank = priority(np.asarray(scores, dtype=np.float64), "hardest", np.random.default_rng(seed))  # ascending position
    low = round((n - budget) / 2)
    order = np.empty(n, dtype=np.int64)
    order[rank] = np.arange(n)  # order[r]: the sample with the r-th lowest score
    return order[low:low + budget]
