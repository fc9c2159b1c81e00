"""D2-pruning: difficulty passed forward over a kNN graph of the embeddings, then diverse greedy sampling
with reverse message passing (Maharana, Yadav & Bansal, ICLR 2024)."""
from __future__ import annotations

import numpy as np
import torch

from .blocks import block_rows, coreset, sq_dists, tensor

EPSILON = 1e-7  # the reference's floor on a neighbour's score in the forward messages


def knn(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances (n, k) and indices (n, k) of each row's k nearest other rows, in row blocks."""
    k = min(k, len(x) - 1)
    dists = torch.empty(len(x), k, device=x.device)
    index = torch.empty(len(x), k, dtype=torch.long, device=x.device)
    x_sq = (x * x).sum(1)
    step = block_rows(len(x))
    for start in range(0, len(x), step):
        d = sq_dists(x[start:start + step], x, x_sq[start:start + step])
        rows = torch.arange(start, min(len(x), start + step), device=x.device)
        d[rows - start, rows] = float("inf")  # not its own neighbour
        top = torch.topk(d, k, largest=False)
        dists[start:start + step], index[start:start + step] = top.values.sqrt(), top.indices
    return dists, index


@coreset
def d2_pruning(scores, budget, labels, seed, embeddings, n_neighbor, gamma):
    """D2-pruning (ICLR 2024; adymaharana/d2pruning `core/data/sampling.py`, GraphDensitySampler).

    1. A kNN graph (`n_neighbor` = 10) over the embeddings, made symmetric; edge weight exp(−d_ij).
    2. Forward message passing ("product" mode): each node's score becomes
       s_i · Σ_{j ~ i} exp(−d_ij) · max(s_j, 1e-7), difficulty reinforced by a dense neighbourhood.
    3. Sampling with reverse message passing ("weighted" mode): take the highest node,
       then lower each of its k nearest neighbours' scores by exp(−γ d)·(its score), so the
       next picks come from elsewhere; γ = `gamma`, 0 meaning the reference's 1/d.
    Differences: the graph is built by blocked torch distances (the reference: sklearn's
    dense pairwise matrix); the budget is global, without the reference's optional
    CCS-style stratification; scores are any scorer's (higher = harder).
    """
    x = tensor(embeddings)
    s = torch.as_tensor(scores, dtype=torch.float64)
    dists, index = (t.cpu() for t in knn(x, n_neighbor))  # the graph and the sampling loop stay on the host
    n, k = index.shape
    rows = torch.arange(n).repeat_interleave(k)
    cols = index.flatten()
    a, b = torch.minimum(rows, cols), torch.maximum(rows, cols)  # undirected edges, each once
    _key, first = np.unique((a * n + b).numpy(), return_index=True)
    a, b = a[first], b[first]
    weight = torch.exp(-dists.flatten()[first].double())
    message = torch.zeros(n, dtype=torch.float64)
    message.index_add_(0, a, weight * s[b].clamp_min(EPSILON))
    message.index_add_(0, b, weight * s[a].clamp_min(EPSILON))
    density = message * s
    g = gamma if gamma > 0 else 1.0 / x.shape[1]
    damp = torch.exp(-g * dists.double())
    chosen = np.empty(budget, dtype=np.int64)
    for t in range(budget):
        j = int(torch.argmax(density))
        chosen[t] = j
        density[index[j]] -= damp[j] * density[j]
        density[j] = -float("inf")
    return chosen
