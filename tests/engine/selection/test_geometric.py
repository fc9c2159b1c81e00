"""k-center greedy, herding and contextual diversity against independent dense float64 loops written from the
papers and DeepCore's descriptions, on the real embeddings, gradients and softmax outputs of conftest.py's `mlp`."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from engine.selection import select
from engine.selection.blocks import on_device

from .conftest import hamilton_quotas

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def groups(labels: np.ndarray, budget: int, per_class: bool):
    """(members, quota, first-center generator) per group, as the strategies document them: per class, the
    largest-remainder quotas and child stream c of SeedSequence(seed) for class c; else one group, stream 0."""
    streams = np.random.SeedSequence(0).spawn(10 if per_class else 1)
    if not per_class:
        return [(np.arange(len(labels)), budget, np.random.default_rng(streams[0]))]
    quotas = hamilton_quotas(np.bincount(labels), budget)
    return [(np.flatnonzero(labels == c), int(quotas[c]), np.random.default_rng(streams[c])) for c in range(10)]


def farthest_first(dist, quota: int, first: int) -> list[int]:
    """Farthest-first traversal on a dense distance matrix: each next center maximises the distance to its
    nearest chosen center."""
    chosen = [first]
    while len(chosen) < quota:
        nearest = dist[:, chosen].min(1)
        nearest[chosen] = -np.inf
        chosen.append(int(np.argmax(nearest)))
    return chosen


def euclidean(x: np.ndarray) -> np.ndarray:
    return cdist(x, x)


@pytest.mark.parametrize("space, per_class", [("embeddings", False), ("embeddings", True), ("gradients", True)])
def test_kcenter_greedy_is_farthest_first_from_the_seeded_center(surrogate, space, per_class):
    vectors = surrogate.embeddings if space == "embeddings" else surrogate.gradients
    with on_device("cpu", torch.float64):
        kept = select("kcenter_greedy", surrogate.loss, 0.06, surrogate.labels, embeddings=surrogate.embeddings,
                      gradients=surrogate.gradients, space=space, per_class=per_class)
    want = []
    for members, quota, rng in groups(surrogate.labels, len(kept), per_class):
        want += members[farthest_first(euclidean(vectors[members]), quota, int(rng.integers(len(members))))].tolist()
    assert np.array_equal(kept, np.sort(want))


def herd(x: np.ndarray, quota: int, farthest: bool) -> list[int]:
    """Welling's herding (argmin) or DeepCore's argmax of ‖(t + 1)·μ − (Σ chosen + x_i)‖ over the unchosen."""
    mu, total, chosen = x.mean(0), np.zeros(x.shape[1]), []
    for t in range(quota):
        dist = np.linalg.norm((t + 1) * mu - (total + x), axis=1)
        dist[chosen] = -np.inf if farthest else np.inf
        chosen.append(int(np.argmax(dist) if farthest else np.argmin(dist)))
        total = total + x[chosen[-1]]
    return chosen


@pytest.mark.parametrize("pick, per_class", [("nearest", False), ("nearest", True), ("farthest", True)])
def test_herding_takes_welling_argmin_and_deepcore_argmax_on_request(surrogate, pick, per_class):
    with on_device("cpu", torch.float64):
        kept = select("herding", surrogate.loss, 0.06, surrogate.labels, embeddings=surrogate.embeddings,
                      per_class=per_class, pick=pick)
    want = []
    for members, quota, _ in groups(surrogate.labels, len(kept), per_class):
        want += members[herd(surrogate.embeddings[members], quota, pick == "farthest")].tolist()
    assert np.array_equal(kept, np.sort(want))
    if pick == "nearest":  # the kept mean tracks the mean: far closer than DeepCore's farthest points
        x = surrogate.embeddings
        far = select("herding", surrogate.loss, 0.06, surrogate.labels, embeddings=x, per_class=per_class,
                     pick="farthest")
        assert np.linalg.norm(x[kept].mean(0) - x.mean(0)) < 0.2 * np.linalg.norm(x[far].mean(0) - x.mean(0))


def symmetric_kl(p: np.ndarray) -> np.ndarray:
    """DeepCore's `_metric`: Σ_k ½ a_k log(a_k / b_k) + ½ b_k log(b_k / a_k), every pair, dense."""
    a, b = p[:, None, :], p[None, :, :]
    return (0.5 * a * np.log(a / b) + 0.5 * b * np.log(b / a)).sum(-1)


@pytest.mark.parametrize("per_class", [True, False])
def test_contextual_diversity_is_farthest_first_in_symmetric_kl_per_class(surrogate, per_class):
    """The probabilities here are the model's own softmax (the strategy reads them back from the gradient
    embeddings); per class by default."""
    options = {} if per_class else {"per_class": False}
    kept = select("contextual_diversity", surrogate.loss, 0.06, surrogate.labels, gradients=surrogate.gradients,
                  **options)
    want = []
    for members, quota, rng in groups(surrogate.labels, len(kept), per_class):
        p = surrogate.probabilities[members]
        want += members[farthest_first(symmetric_kl(p), quota, int(rng.integers(len(members))))].tolist()
    assert np.array_equal(kept, np.sort(want))
