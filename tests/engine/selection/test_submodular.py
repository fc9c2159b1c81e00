"""Facility location, graph cut and log-determinant against the libraries a user would otherwise pick
(apricot-select, submodlib-py: the dev extra), on the real gradient embeddings and embeddings of an `mlp`
trained on MNIST (conftest.py), per class, computed here in float64 so the objectives agree to 1e-9."""
import contextlib
import io

import numpy as np
import pytest
import torch

from engine.selection import select
from engine.selection.blocks import on_device

from .conftest import cosine_kernel, hamilton_quotas

RATIO = 0.06  # 102 of 1692: per-class quotas 7, 8, 9, 9, 10, 11, 12, 12, 12, 12 (largest remainders)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def peer(name: str):
    return pytest.importorskip(name, reason=f"{name} (the dev extra) is the peer this test compares against")


def quietly(fn):
    """submodlib prints a progress bar per call."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn()


def per_class(surrogate, kept):
    """(members, quota, the positions within members that `kept` holds) of each class."""
    sizes = np.bincount(surrogate.labels)
    quotas = hamilton_quotas(sizes, len(kept))
    for c, quota in enumerate(quotas):
        members = np.flatnonzero(surrogate.labels == c)
        yield members, int(quota), set(np.flatnonzero(np.isin(members, kept)).tolist())


def run(surrogate, name, **options):
    with on_device("cpu", torch.float64):
        return select(name, surrogate.loss, RATIO, surrogate.labels, embeddings=surrogate.embeddings,
                      gradients=surrogate.gradients, **options)


def order_of(function, vectors: np.ndarray, quota: int) -> np.ndarray:
    """prunelab's greedy pick order on one class, in float64 (plain greedy: lazy's picks, checked elsewhere)."""
    from engine.selection.blocks import tensor
    from engine.selection.submodular import greedy

    with on_device("cpu", torch.float64):
        f = function(tensor(vectors))
        return greedy(f, len(vectors), quota, "plain", 0.01, np.random.default_rng(0))


def agree_up_to_exact_ties(gains, ours, theirs) -> int | None:
    """Walk two greedy pick orders. Where they part, both picks must have the largest float64 gain given the
    common prefix, tied exactly (to rounding, 1e-12); from there on they may differ. Returns that step, or
    None when the orders are the same."""
    ours, theirs = [int(i) for i in ours], [int(i) for i in theirs]
    assert len(ours) == len(theirs)
    for t, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            g = gains(ours[:t])
            assert abs(g[a] - g.max()) <= 1e-12 * abs(g.max()) and abs(g[b] - g.max()) <= 1e-12 * abs(g.max()), (
                f"step {t}: {a} (gain {g[a]!r}) against {b} (gain {g[b]!r}), best {g.max()!r}")
            return t
    return None


def facility_gains(k: np.ndarray):
    def gains(chosen):
        best = k[:, chosen].max(1) if chosen else np.zeros(len(k))
        return np.maximum(k - best[:, None], 0).sum(0)
    return gains


def facility_value(k: np.ndarray, chosen) -> float:
    return float(k[:, sorted(chosen)].max(1).sum())


@pytest.mark.slow  # apricot compiles its numba gain function on every call
@pytest.mark.parametrize("space", ["gradients", "embeddings"])
def test_facility_location_matches_apricot_and_submodlib(surrogate, space):
    """Per class (the default) against submodlib, on all of it (per_class = false) against apricot."""
    from engine.selection.submodular import FacilityLocation

    apricot = peer("apricot")
    submodlib = peer("submodlib")
    vectors = surrogate.gradients if space == "gradients" else surrogate.embeddings
    kept = run(surrogate, "facility_location", space=space)
    ties = []
    for members, quota, ours in per_class(surrogate, kept):
        k = cosine_kernel(vectors[members])
        order = order_of(FacilityLocation, vectors[members], quota)
        assert set(order.tolist()) == ours
        fl = submodlib.FacilityLocationFunction(n=len(k), mode="dense", sijs=k, separate_rep=False)
        sub = quietly(lambda fl=fl, quota=quota: fl.maximize(budget=quota, optimizer="NaiveGreedy",
                                                             stopIfZeroGain=False, stopIfNegativeGain=False))
        tie = agree_up_to_exact_ties(facility_gains(k), order, [i for i, _ in sub])
        if tie is None:
            assert facility_value(k, order) == pytest.approx(facility_value(k, [i for i, _ in sub]), rel=1e-9)
        ties.append(tie)
    assert ties.count(None) >= 8  # submodlib sums in float32: exact float64 ties (a pair covering only each
    # other gains the same either way) may go its way, as the one of class 7 on the gradients does at step 9
    whole = run(surrogate, "facility_location", space=space, per_class=False)
    k = cosine_kernel(vectors)
    order = order_of(FacilityLocation, vectors, len(whole))
    theirs = apricot.FacilityLocationSelection(len(whole), metric="precomputed", optimizer="naive").fit(k).ranking
    assert set(order.tolist()) == set(whole.tolist())
    assert agree_up_to_exact_ties(facility_gains(k), order, theirs) is None
    assert facility_value(k, order) == pytest.approx(facility_value(k, theirs), rel=1e-9)


@pytest.mark.parametrize("lam", [1.0, 0.4])
def test_graph_cut_matches_submodlib(surrogate, lam):
    from engine.selection.submodular import GraphCut

    submodlib = peer("submodlib")
    kept = run(surrogate, "graph_cut", lam=lam)
    for members, quota, ours in per_class(surrogate, kept):
        k = cosine_kernel(surrogate.gradients[members])
        order = order_of(lambda x: GraphCut(x, lam), surrogate.gradients[members], quota)
        assert set(order.tolist()) == ours
        gc = submodlib.GraphCutFunction(n=len(k), mode="dense", lambdaVal=lam, ggsijs=k, separate_rep=False)
        sub = [i for i, _ in quietly(lambda gc=gc, quota=quota: gc.maximize(
            budget=quota, optimizer="NaiveGreedy", stopIfZeroGain=False, stopIfNegativeGain=False))]

        def gains(chosen, k=k):
            return k.sum(0) - lam * (2 * k[chosen].sum(0) + np.diag(k))

        def value(s, k=k):
            return k[:, s].sum() - lam * k[np.ix_(s, s)].sum()

        assert agree_up_to_exact_ties(gains, order, sub) is None
        assert value(order) == pytest.approx(value(sub), rel=1e-9)


def test_log_determinant_is_greedy_on_submodlibs_gains(surrogate):
    """Every first gain is log(1 + ridge) exactly (an exact tie, taken by the lowest index); the later picks are
    submodlib's greedy on the function conditioned on that first pick: log det L_{j0 ∪ T} = log L_{j0 j0} +
    log det C_T, C the Schur complement of L_{j0 j0} in L = K + ridge·I."""
    submodlib = peer("submodlib")
    from engine.selection.blocks import tensor
    from engine.selection.submodular import LogDeterminant, greedy

    ridge = 1e-4
    kept = run(surrogate, "log_determinant", ridge=ridge)
    for members, quota, ours in per_class(surrogate, kept):
        with on_device("cpu", torch.float64):
            f = LogDeterminant(tensor(surrogate.gradients[members]), ridge, quota)
            first = f.gains(torch.arange(len(members)))
            order = greedy(f, len(members), quota, "plain", 0.01, np.random.default_rng(0))
        assert set(order.tolist()) == ours
        assert torch.all(first == first[0]) and float(first[0]) == pytest.approx(np.log1p(ridge), rel=1e-12)
        assert order[0] == 0  # the tie goes to the lowest index
        big = cosine_kernel(surrogate.gradients[members]) + ridge * np.eye(len(members))
        rest = np.arange(1, len(members))
        schur = big[np.ix_(rest, rest)] - np.outer(big[rest, 0], big[0, rest]) / big[0, 0]
        ld = submodlib.LogDeterminantFunction(n=len(rest), mode="dense", lambdaVal=ridge,
                                              sijs=schur - ridge * np.eye(len(rest)))
        sub = quietly(lambda ld=ld, quota=quota: ld.maximize(budget=quota - 1, optimizer="NaiveGreedy",
                                                             stopIfZeroGain=False, stopIfNegativeGain=False))
        assert [int(rest[i]) for i, _ in sub] == order[1:].tolist()
        ours_value = np.linalg.slogdet(big[np.ix_(order, order)])[1]
        assert ours_value == pytest.approx(np.log(big[0, 0]) + np.linalg.slogdet(
            schur[np.ix_(order[1:] - 1, order[1:] - 1)])[1], rel=1e-9)


def deepcore_gradients(surrogate) -> np.ndarray:
    """DeepCore's `calc_gradient` layout, rebuilt from the model's own logits and embeddings: the loss's gradient
    with respect to the outputs (softmax − onehot), then the weight block (that times the embedding, class by
    class): [bias grads, weight grads]."""
    logits = torch.as_tensor(surrogate.logits).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(surrogate.labels), reduction="sum")
    bias = torch.autograd.grad(loss, logits)[0].numpy()
    weight = bias[:, :, None] * surrogate.embeddings[:, None, :]
    return np.concatenate([bias, weight.reshape(len(bias), -1)], 1)


@pytest.mark.parametrize("name", ["facility_location", "graph_cut", "log_determinant"])
def test_submodular_strategies_compare_deepcores_gradients_by_default(surrogate, name):
    """The default space is DeepCore's: the same picks as on DeepCore's own gradient layout (a permutation of
    prunelab's coordinates), and other picks than on the embeddings."""
    default = run(surrogate, name)
    with on_device("cpu", torch.float64):
        theirs = select(name, surrogate.loss, RATIO, surrogate.labels, gradients=deepcore_gradients(surrogate))
    embedded = run(surrogate, name, space="embeddings")
    assert np.array_equal(default, theirs)
    assert np.array_equal(default, run(surrogate, name, space="gradients"))
    assert len(set(default) & set(embedded)) < 0.8 * len(default)


@pytest.mark.timeout(120)  # the healthy call takes milliseconds
@pytest.mark.parametrize("method", ["lazy", "plain"])
def test_greedy_ends_on_exact_ties_that_never_shrink(surrogate, method):
    """Graph cut with λ = 0 is modular: on 100 copies of one real gradient every gain ties exactly, at every step,
    and never shrinks. Lazy greedy once looped forever there (its top-32 refresh held only fresh bounds equal to
    the stale argmax's); now it ends with plain greedy's picks, the lowest indices."""
    from engine.selection.submodular import GraphCut, greedy

    x = torch.as_tensor(np.repeat(surrogate.gradients[:1], 100, 0))
    chosen = greedy(GraphCut(x, 0.0), 100, 10, method, 0.01, np.random.default_rng(0))
    assert chosen.tolist() == list(range(10))
