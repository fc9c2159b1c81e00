"""D2-pruning: difficulty passed forward over a kNN graph of the embeddings, then diverse greedy sampling
with reverse message passing (Maharana, Yadav & Bansal, ICLR 2024; adymaharana/d2pruning
`core/data/sampling.py`, `GraphDensitySampler`)."""
from __future__ import annotations

import numpy as np
import torch

from .blocks import block_rows, coreset, sq_dists, tensor

EPSILON = 1e-7  # the reference's floor on a neighbour's score in the forward messages
MODES = ("sum", "product")  # how a node's own score joins its neighbours' messages (the reference's --graph-mode)
GRAPHS = ("symmetric", "directed")  # whose neighbours a node has: the kNN graph made symmetric, or its own k


def knn(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances (n, k) and indices (n, k) of each row's k nearest other rows, in row blocks."""
    k = min(k, len(x) - 1)
    dists = torch.empty(len(x), k, dtype=x.dtype, device=x.device)
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


def edge_lengths(x: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 16) -> torch.Tensor:
    """‖x_a − x_b‖ for each edge, in float64 from the rows themselves (no ‖x‖² − 2x·y cancellation)."""
    out = np.empty(len(a))
    for start in range(0, len(a), chunk):
        diff = x[a[start:start + chunk]] - x[b[start:start + chunk]]
        out[start:start + chunk] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return torch.as_tensor(out)


def neighbour_lists(index: torch.Tensor, graph: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The graph as adjacency lists: (ptr, source, target), node i's neighbours target[ptr[i]:ptr[i + 1]].

    "directed": each node's own k nearest. "symmetric": j is i's neighbour when either is among the
    other's k nearest (sklearn's kneighbors_graph made symmetric, as sampling.py does), each pair once
    per endpoint.
    """
    n, k = index.shape
    rows = np.repeat(np.arange(n), k)
    cols = index.numpy().reshape(-1)
    if graph == "symmetric":
        low, high = np.minimum(rows, cols), np.maximum(rows, cols)
        pairs = np.unique(low * n + high)
        low, high = pairs // n, pairs % n
        rows, cols = np.concatenate([low, high]), np.concatenate([high, low])
    order = np.argsort(rows, kind="stable")
    rows, cols = rows[order], cols[order]
    ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return ptr, rows, cols


@coreset
def d2_pruning(scores, budget, labels, seed, embeddings, n_neighbor, gamma, mode="sum", graph="symmetric"):
    """D2-pruning (ICLR 2024; adymaharana/d2pruning `core/data/sampling.py`, GraphDensitySampler).

    1. A kNN graph (`n_neighbor`, the README's 5) over the embeddings, made symmetric (`graph =
       "symmetric"`, sampling.py's in-memory path) or each node's own k (`"directed"`, its path for a
       precomputed graph, used for ImageNet); the edge i → j weighs exp(−d_ij)·max(s_j, 1e-7) (no
       floor on the directed path, as there).
    2. Forward message passing: each node's density is Σ_{j ~ i} exp(−d_ij)·max(s_j, 1e-7) plus
       (`mode = "sum"`, the README's recipe) or times (`"product"`) its own score s_i.
    3. Sampling with reverse message passing ("weighted" mode): take the densest node, then lower
       every neighbour j of it by exp(−γ·d_ij)·(its density), so the next picks come from
       elsewhere; γ = `gamma` (the README's 0.1; 0 means the reference's default 1/d).
    The edge lengths are float64 norms of the differences; the kNN search runs in the strategies'
    dtype (float32) in row blocks, not sklearn's dense matrix. Scores are any scorer's (higher =
    harder); the budget is global (the reference's optional CCS-style strata are not here).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    s = torch.as_tensor(scores, dtype=torch.float64)
    _dists, index = knn(tensor(x), n_neighbor)
    ptr, source, target = neighbour_lists(index.cpu(), graph)  # the graph and the sampling loop stay on the host
    length = edge_lengths(x, source, target)
    message = torch.zeros(len(x), dtype=torch.float64)
    floor = s[target].clamp_min(EPSILON) if graph == "symmetric" else s[target]  # the precomputed path has none
    message.index_add_(0, torch.as_tensor(source), torch.exp(-length) * floor)
    density = message + s if mode == "sum" else message * s
    damp = torch.exp(-(gamma if gamma > 0 else 1.0 / x.shape[1]) * length)
    target = torch.as_tensor(target)
    chosen = np.empty(budget, dtype=np.int64)
    for t in range(budget):
        j = int(torch.argmax(density))
        chosen[t] = j
        edges = slice(int(ptr[j]), int(ptr[j + 1]))
        density[target[edges]] -= damp[edges] * density[j]
        density[j] = -float("inf")
    return chosen
