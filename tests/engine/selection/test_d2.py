"""D2-pruning against an independent dense float64 loop written from the description of adymaharana/d2pruning's
`GraphDensitySampler` (core/data/sampling.py), on the real embeddings and losses of conftest.py's `mlp`."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from engine.selection import STRATEGIES, select
from engine.selection.blocks import on_device

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FLOOR = 1e-7


def dense_d2(x, s, budget, k, gamma, mode, graph):
    """The reference's two paths, densely. "symmetric" (its in-memory path): a connectivity matrix with
    C[i, j] = exp(−d_ij)·max(s_j, 1e-7) and C[j, i] = exp(−d_ij)·max(s_i, 1e-7) for every kNN edge i → j; each
    pick lowers every j with C[pick, j] > 0. "directed" (its precomputed path): row i holds its own k nearest,
    exp(−d)·s of them, no floor; each pick lowers its own k. Density: row sums plus (sum) or times (product)
    the node's score. A pick lowers a neighbour by exp(−γ·d)·(the pick's density); picked nodes drop below
    every other."""
    d = cdist(x, x)
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, 1, kind="stable")[:, :k]
    if graph == "symmetric":
        c = np.zeros_like(d)
        for i in range(len(x)):
            for j in near[i]:
                c[i, j] = np.exp(-d[i, j]) * max(s[j], FLOOR)
                c[j, i] = np.exp(-d[i, j]) * max(s[i], FLOOR)
        message = c.sum(1)
        neighbours = [np.flatnonzero(c[i] > 0) for i in range(len(x))]
    else:
        message = (np.exp(-np.take_along_axis(d, near, 1)) * s[near]).sum(1)
        neighbours = list(near)
    density = message + s if mode == "sum" else message * s
    chosen = []
    for _ in range(budget):
        pick = int(np.argmax(density))
        nb = neighbours[pick]
        density[nb] = density[nb] - np.exp(-d[pick, nb] * gamma) * density[pick]
        chosen.append(pick)
        density[chosen] = density.min() - 1
    return chosen


@pytest.mark.parametrize("mode, graph, k, gamma", [
    ("sum", "symmetric", 5, 0.1),  # the README's recipe, the defaults
    ("product", "symmetric", 10, 0.1),
    ("sum", "directed", 5, 0.1),
    ("sum", "symmetric", 5, 0.0),  # 0: the reference's default γ, 1/embedding width
])
def test_d2_pruning_matches_an_independent_dense_loop(surrogate, mode, graph, k, gamma):
    x, s = surrogate.embeddings[:600], surrogate.loss[:600]
    options = {"mode": mode, "graph": graph, "n_neighbor": k, "gamma": gamma}
    fn = STRATEGIES["d2_pruning"].fn.load()
    with on_device("cpu", torch.float64):
        order = fn(s, 60, surrogate.labels[:600], 0, x, **options)
        kept = select("d2_pruning", s, 0.1, surrogate.labels[:600], embeddings=x, **options)
    want = dense_d2(x, s.copy(), 60, k, gamma if gamma > 0 else 1 / x.shape[1], mode, graph)
    assert order.tolist() == want
    assert np.array_equal(kept, np.sort(want))
