"""CRAIG, GradMatch and Glister against independent float64 computations written from the papers and the
reference code's description (and apricot-select for CRAIG's facility location), on the real last-layer gradient
embeddings of conftest.py's `mlp`."""
import numpy as np
import pytest
import torch
from scipy.optimize import nnls
from scipy.spatial.distance import cdist

from engine.selection import select, select_weighted
from engine.selection.blocks import on_device
from engine.selection.gradient import holdout

from .conftest import hamilton_quotas

RATIO = 0.06  # 102 of 1692 samples
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def classes(surrogate, kept):
    """(members, quota, this class's mask over `kept`) of each class, quotas by largest remainders."""
    quotas = hamilton_quotas(np.bincount(surrogate.labels), len(kept))
    for c, quota in enumerate(quotas):
        yield np.flatnonzero(surrogate.labels == c), int(quota), surrogate.labels[kept] == c


def facility_greedy(sim: np.ndarray, quota: int) -> list[int]:
    """Plain greedy on Σ_i max_{j ∈ S} sim_ij (the empty set worth 0)."""
    best, chosen = np.zeros(len(sim)), []
    for _ in range(quota):
        gains = np.maximum(sim - best[:, None], 0).sum(0)
        gains[chosen] = -np.inf
        chosen.append(int(np.argmax(gains)))
        best = np.maximum(best, sim[:, chosen[-1]])
    return chosen


def test_craig_matches_apricot_on_max_d_minus_d_and_weighs_by_cluster_size(surrogate):
    """Per class: CRAIG's similarity max(D) − D (DeepCore adds 1e-3: the same picks), each medoid weighted by
    the class members nearest to it (baharanm/craig), + 1 with plus_one (DeepCore)."""
    g = surrogate.gradients
    with on_device("cpu", torch.float64):
        sel = select_weighted("craig", surrogate.loss, RATIO, surrogate.labels, gradients=g)
        plus = select_weighted("craig", surrogate.loss, RATIO, surrogate.labels, gradients=g, plus_one=True)
    assert np.array_equal(plus.indices, sel.indices) and np.array_equal(plus.weights, sel.weights + 1)
    for c, (members, quota, mine) in enumerate(classes(surrogate, sel.indices)):
        d = cdist(g[members], g[members])
        chosen = facility_greedy(d.max() - d + 1e-3, quota)
        assert np.array_equal(np.sort(members[chosen]), sel.indices[mine])
        sizes = np.bincount(d[:, chosen].argmin(1), minlength=quota).astype(float)
        by_index = dict(zip(members[chosen].tolist(), sizes))
        assert [by_index[i] for i in sel.indices[mine]] == sel.weights[mine].tolist()
        assert sel.weights[mine].sum() == len(members)
        if c == 0:  # apricot compiles its gain function on every call (seconds): one class
            apricot = pytest.importorskip("apricot", reason="apricot-select (the dev extra) is CRAIG's peer")
            theirs = apricot.FacilityLocationSelection(quota, metric="precomputed", optimizer="naive").fit(d.max() - d)
            assert theirs.ranking.tolist() == chosen


def omp(a: np.ndarray, target: np.ndarray, k: int, lam: float) -> tuple[list[int], np.ndarray]:
    """Orthogonal matching pursuit, each refit scipy's NNLS from scratch on the stacked ridge problem
    [A_S; √λ·I] w ≈ [target; 0], w ≥ 0."""
    chosen, residual, w = [], target, np.zeros(0)
    for _ in range(k):
        corr = a.T @ residual
        corr[chosen] = -np.inf
        chosen.append(int(np.argmax(corr)))
        cols = a[:, chosen]
        w = nnls(np.vstack([cols, np.sqrt(lam) * np.eye(len(chosen))]), np.concatenate([target, np.zeros(len(chosen))]),
                 maxiter=10_000)[0]
        residual = target - cols @ w
    return chosen, w


@pytest.mark.parametrize("lam", [1.0, 0.0])
def test_gradmatch_is_omp_with_a_nonnegative_ridge_refit_each_pick(surrogate, lam):
    g = surrogate.gradients
    sel = select_weighted("gradmatch", surrogate.loss, RATIO, surrogate.labels, gradients=g, omp_lam=lam)
    zeros = 0
    for members, quota, mine in classes(surrogate, sel.indices):
        a = g[members].T
        chosen, w = omp(a, a.sum(1), quota, lam)
        assert np.array_equal(np.sort(members[chosen]), sel.indices[mine])
        order = np.argsort(members[chosen])
        np.testing.assert_allclose(sel.weights[mine], w[order], rtol=1e-10, atol=1e-10 * w.max())
        zeros += int((w == 0).sum())
    assert lam == 0 or zeros > 0  # the bound w ≥ 0 is active: the refits are not unconstrained least squares


def test_gradmatch_fill_replaces_zero_weights_like_cords(surrogate):
    g = surrogate.gradients
    keep = select_weighted("gradmatch", surrogate.loss, RATIO, surrogate.labels, gradients=g)
    fill = select_weighted("gradmatch", surrogate.loss, RATIO, surrogate.labels, gradients=g, zero_weights="fill")
    again = select_weighted("gradmatch", surrogate.loss, RATIO, surrogate.labels, gradients=g, zero_weights="fill")
    other = select_weighted("gradmatch", surrogate.loss, RATIO, surrogate.labels, seed=1, gradients=g,
                            zero_weights="fill")
    zero = keep.weights == 0
    assert 0 < zero.sum() < len(zero)
    kept = dict(zip(keep.indices.tolist(), keep.weights.tolist()))
    filled = dict(zip(fill.indices.tolist(), fill.weights.tolist()))
    assert {i: w for i, w in kept.items() if w > 0} == {i: w for i, w in filled.items() if i in kept}
    new = set(filled) - set(kept)
    assert len(new) == zero.sum() and all(filled[i] == 1.0 for i in new)
    assert np.array_equal(fill.indices, again.indices) and not np.array_equal(fill.indices, other.indices)


def test_glister_matches_each_class_against_its_own_holdout(surrogate):
    """Each pick maximises g_i · ∇L_val_c(θ − η·mean(g_S)): the validation loss of the class's own holdout
    samples (DeepCore's `balance`, cords' PerClass), its last-layer gradient taken by autograd on the model's
    own logits and embeddings."""
    g = torch.as_tensor(surrogate.gradients)
    y = torch.as_tensor(surrogate.labels)
    val = holdout(surrogate.labels, 0.1, seed=0)
    z_all = torch.as_tensor(surrogate.logits)
    e_all = torch.cat([torch.as_tensor(surrogate.embeddings), torch.ones(len(g), 1, dtype=torch.float64)], 1)
    kept = select("glister", surrogate.loss, RATIO, surrogate.labels, gradients=surrogate.gradients)
    for members, quota, mine in classes(surrogate, kept):
        own = val[surrogate.labels[val] == surrogate.labels[members[0]]]
        z, e = z_all[own], e_all[own]

        def val_gradient(step, z=z, e=e, own=own):
            delta = (-0.1 * step.reshape(10, -1)).requires_grad_(True)  # the last layer's move, [W | b] per class
            loss = torch.nn.functional.cross_entropy(z + e @ delta.T, y[own])
            return torch.autograd.grad(loss, delta)[0].flatten()

        chosen: list[int] = []
        for _ in range(quota):
            step = g[members[chosen]].mean(0) if chosen else torch.zeros(g.shape[1], dtype=g.dtype)
            gains = g[members] @ val_gradient(step)
            gains[chosen] = -torch.inf
            chosen.append(int(torch.argmax(gains)))
        assert np.array_equal(np.sort(members[chosen]), kept[mine])
