"""Coreset strategies and weighted subsets on real data: embeddings and exact last-layer gradient
embeddings of an `mlp` trained one epoch on 2000 real MNIST digits (the embedded mnist-mini set)."""
import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

import engine
from engine.config import TrainConfig
from engine.data.dataset import load_dataset
from engine.scoring.batch import score_model
from engine.scoring.gradembed import GradientEmbeddings, last_layer_gradients
from engine.selection import STRATEGIES, select, select_weighted
from engine.selection.gradient import _logits_and_features, holdout, nnls_gram
from engine.selection.submodular import FacilityLocation, greedy
from engine.store.tracking import tracker
from engine.trainer import train

CORESETS = ["kcenter_greedy", "herding", "facility_location", "graph_cut", "log_determinant", "craig", "gradmatch",
            "glister", "contextual_diversity", "d2_pruning"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def real():
    ds = load_dataset("mnist-mini", train_size=2000)
    model = train("mlp", ds, TrainConfig(epochs=1, batch_size=128), seed=0, evaluate_every_epoch=False,
                  evaluate_at_end=False).model
    out = score_model(model, ds, ["loss"], embeddings=True, gradients=True)
    return ds, model, out.scores["loss"].astype(np.float64), ds.y_train.numpy(), out.embeddings, out.gradients


def test_gradient_embeddings_are_the_exact_last_layer_gradients(real):
    ds, model, *_ = real
    model = model.double()
    x = ds.normalize(ds.x_train[:6], torch.float64)
    y = ds.y_train[:6]
    feats = model.features(x)
    got = last_layer_gradients(feats, model.head(feats), y)
    for i in range(6):
        w, b = model.head.weight, model.head.bias
        loss = torch.nn.functional.cross_entropy(model.head(feats[i:i + 1]), y[i:i + 1])
        gw, gb = torch.autograd.grad(loss, [w, b])
        want = torch.cat([gw, gb[:, None]], 1).flatten()
        assert torch.allclose(got[i], want, atol=1e-10, rtol=0)
    model.float()


def test_gradient_embeddings_project_above_the_bound(real):
    ds, model, *_ = real
    g = GradientEmbeddings(2000, torch.device("cpu"), "float16", max_mb=2000 * 2 * 100 / 2**20)
    x = ds.normalize(ds.x_train[:2000])
    with torch.no_grad():
        feats = model.features(x)
        g.add(0, feats, model.head(feats), ds.y_train[:2000])
        full = last_layer_gradients(feats, model.head(feats), ds.y_train[:2000]).double()
    small = torch.as_tensor(g.numpy()).double()
    assert g.projection == "gaussian:100" and small.shape == (2000, 100) and g.out.dtype == torch.float16
    # Johnson-Lindenstrauss: squared norms kept within about sqrt(8/k)
    ratio = (small.norm(dim=1) ** 2 / full.norm(dim=1).clamp_min(1e-6) ** 2)[full.norm(dim=1) > 0.1]
    assert abs(float(ratio.median()) - 1) < 0.15


def radius(x, centers):
    d = ((x[:, None] - x[centers][None]) ** 2).sum(-1)
    return np.sqrt(d.min(1).max())


def test_kcenter_is_within_twice_the_optimum_and_beats_random(real):
    _, _, loss, labels, emb, _ = real
    tiny = emb[:14].astype(np.float64)
    best = min(radius(tiny, list(c)) for c in itertools.combinations(range(14), 3))
    kept = select("kcenter_greedy", loss[:14], 3 / 14, labels[:14], embeddings=tiny)
    assert radius(tiny, kept) <= 2 * best + 1e-9
    kept = select("kcenter_greedy", loss, 0.05, labels, embeddings=emb)
    rng = np.random.default_rng(0)
    randoms = [radius(emb.astype(np.float64), rng.choice(2000, 100, replace=False)) for _ in range(5)]
    assert radius(emb.astype(np.float64), kept) < 0.8 * min(randoms)


def facility_value(x, chosen):
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    return (0.5 + 0.5 * u @ u[list(chosen)].T).max(1).sum()


def test_facility_location_is_within_one_minus_one_over_e_of_the_optimum(real):
    _, _, loss, labels, emb, _ = real
    tiny = emb[:16].astype(np.float64)
    best = max(facility_value(tiny, c) for c in itertools.combinations(range(16), 4))
    for method in ("lazy", "plain", "stochastic"):
        kept = select("facility_location", loss[:16], 0.25, labels[:16], embeddings=tiny, per_class=False,
                      greedy=method, space="embeddings")
        assert facility_value(tiny, kept) >= (1 - 1 / np.e) * best
    f = FacilityLocation(torch.as_tensor(tiny, dtype=torch.float32))
    chosen = greedy(f, 16, 4, "plain", 0.01, np.random.default_rng(0))
    assert f.value() == pytest.approx(facility_value(tiny, chosen), rel=1e-5)


@pytest.mark.parametrize("name", ["facility_location", "graph_cut", "log_determinant", "craig"])
def test_lazy_greedy_picks_what_plain_greedy_picks(real, name):
    _, _, loss, labels, emb, grads = real
    kwargs = {"gradients": grads} if STRATEGIES[name].needs_gradients else {"embeddings": emb}
    lazy = select(name, loss, 0.05, labels, greedy="lazy", **kwargs)
    plain = select(name, loss, 0.05, labels, greedy="plain", **kwargs)
    stochastic = select(name, loss, 0.05, labels, greedy="stochastic", **kwargs)
    assert np.array_equal(lazy, plain) and not np.array_equal(lazy, stochastic)


def test_gradmatch_residual_shrinks_with_the_budget(real):
    _, _, loss, labels, _, grads = real
    g = grads.astype(np.float64)
    residuals = []
    for ratio in (0.005, 0.01, 0.02, 0.05):
        sel = select_weighted("gradmatch", loss, ratio, labels, gradients=grads)
        total = 0.0
        for c in np.unique(labels):
            mine = labels[sel.indices] == c
            target = g[labels == c].sum(0)
            total += np.linalg.norm(target - sel.weights[mine] @ g[sel.indices[mine]])
        residuals.append(total)
    assert all(b < a for a, b in itertools.pairwise(residuals)), residuals
    assert residuals[-1] < 0.5 * residuals[0]


def test_gradmatch_weights_are_the_exact_nonnegative_ridge_fit_of_its_picks(real):
    """Warm-started active-set NNLS at every OMP step must land on the unique optimum that scipy's NNLS
    finds from scratch on the stacked form [A_S; √λ I] w ≈ [target; 0], here for the final picks."""
    _, _, loss, labels, _, grads = real
    g = grads.astype(np.float64)
    sel = select_weighted("gradmatch", loss, 0.05, labels, gradients=grads)
    zeros = 0
    for c in np.unique(labels):
        mine = labels[sel.indices] == c
        a = g[sel.indices[mine]].T
        stacked = np.vstack([a, np.eye(a.shape[1])])  # omp_lam = 1
        want, _ = nnls(stacked, np.concatenate([g[labels == c].sum(0), np.zeros(a.shape[1])]))
        np.testing.assert_allclose(sel.weights[mine], want, rtol=1e-10, atol=1e-10 * want.max())
        zeros += int((want == 0).sum())
    assert zeros > 0  # the non-negativity bound is active somewhere, so the active set was exercised


def test_nnls_gram_matches_scipy_from_any_warm_start():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 25))
    y = rng.normal(size=40)
    m, b = a.T @ a + 0.5 * np.eye(25), a.T @ y  # min ‖a w − y‖² + 0.5 ‖w‖², w ≥ 0
    want, _ = nnls(np.vstack([a, np.sqrt(0.5) * np.eye(25)]), np.concatenate([y, np.zeros(25)]))
    w, passive, lower = nnls_gram(m, b, np.zeros(25), [], np.zeros((0, 0)))
    np.testing.assert_allclose(w, want, rtol=1e-10, atol=1e-12)
    assert 0 < len(passive) < 25 and sorted(passive) == list(np.flatnonzero(w > 0))
    np.testing.assert_allclose(lower @ lower.T, m[np.ix_(passive, passive)], rtol=1e-12, atol=1e-12)
    wrong = [i for i in range(25) if i not in passive][:4]  # a warm start on columns the optimum drops
    start = np.zeros(25)
    start[wrong] = 1.0
    w2, passive2, _ = nnls_gram(m, b, start, wrong, np.linalg.cholesky(m[np.ix_(wrong, wrong)]))
    np.testing.assert_allclose(w2, want, rtol=1e-10, atol=1e-12)
    assert sorted(passive2) == sorted(passive)


def test_glister_is_greedy_on_the_autograd_validation_gradient(real):
    """With per_class = false, each pick maximises g_i · ∇L_val(θ − η·mean(g_S)) over all samples, the whole
    holdout's validation loss's last-layer gradient taken here by autograd on the recovered holdout logits,
    independently of glister's closed form."""
    ds, _, loss, labels, _, grads = real
    val = holdout(labels, 0.1, seed=0)
    g = torch.as_tensor(grads, dtype=torch.float64)
    z, e = _logits_and_features(g[val], ds.y_train[val], 10)
    e = torch.cat([e, torch.ones(len(val), 1, dtype=e.dtype)], 1)

    def val_gradient(step):
        delta = (-0.1 * step.reshape(10, -1)).requires_grad_(True)
        val_loss = torch.nn.functional.cross_entropy(z + e @ delta.T, ds.y_train[val])
        return torch.autograd.grad(val_loss, delta)[0].flatten()

    chosen: list[int] = []
    for _ in range(40):
        step = g[chosen].mean(0) if chosen else torch.zeros(g.shape[1], dtype=g.dtype)
        gains = g @ val_gradient(step)
        gains[chosen] = -torch.inf
        chosen.append(int(torch.argmax(gains)))
    kept = select("glister", loss, 40 / 2000, labels, gradients=grads, per_class=False)
    assert np.array_equal(kept, np.sort(chosen))


def test_craig_weights_are_the_class_members_each_medoid_covers(real):
    _, _, loss, labels, _, grads = real
    sel = select_weighted("craig", loss, 0.02, labels, gradients=grads)
    g = grads.astype(np.float64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        medoids = sel.indices[labels[sel.indices] == c]
        assert sel.weights[labels[sel.indices] == c].sum() == len(members)
        d = ((g[members][:, None] - g[medoids][None]) ** 2).sum(-1)
        assert np.array_equal(np.bincount(d.argmin(1), minlength=len(medoids)),
                              sel.weights[labels[sel.indices] == c])
    assert select_weighted("craig", loss, 0.02, labels, gradients=grads, weighted=False).weights is None


def test_glister_recovers_the_holdout_and_starts_from_the_validation_gradient(real):
    ds, model, loss, labels, emb, grads = real
    val = holdout(labels, 0.1, seed=0)
    assert len(val) == sum(max(1, round(0.1 * (labels == c).sum())) for c in range(10))
    assert np.array_equal(np.bincount(labels[val]), [max(1, round(0.1 * (labels == c).sum())) for c in range(10)])
    z, e = _logits_and_features(torch.as_tensor(grads[val], dtype=torch.float64), ds.y_train[val], 10)
    with torch.no_grad():
        logits = model(ds.normalize(ds.x_train[val])).double()
    learned = torch.softmax(logits, 1)[torch.arange(len(val)), ds.y_train[val]] < 0.999
    assert torch.allclose(e[learned], torch.as_tensor(emb[val], dtype=torch.float64)[learned], atol=2e-3)
    assert torch.allclose(torch.softmax(z, 1), torch.softmax(logits, 1), atol=1e-5)
    # the first pick of each class is the sample most aligned with the mean gradient of the class's holdout
    kept = select("glister", loss, 10 / 2000, labels, gradients=grads)
    want = [np.flatnonzero(labels == c)[np.argmax(grads[labels == c] @ grads[val[labels[val] == c]].mean(0))]
            for c in range(10)]
    assert np.array_equal(kept, np.sort(want))


def test_contextual_diversity_is_farthest_first_in_kl(real):
    ds, model, loss, labels, _emb, grads = real
    with torch.no_grad():
        p = torch.softmax(model(ds.normalize(ds.x_train)).double(), 1).numpy()
    kept = select("contextual_diversity", loss, 0.01, labels, gradients=grads, per_class=False)
    # every kept sample but the seeded first is the farthest, in the symmetric KL, from the ones before it:
    # so the covering radius in that divergence is far below a random subset's

    def radius(centers):
        a, b = p[:, None, :], p[centers][None]
        return (0.5 * (a - b) * (np.log(a) - np.log(b))).sum(-1).min(1).max()

    rng = np.random.default_rng(0)
    assert radius(kept) < 0.5 * radius(rng.choice(2000, len(kept), replace=False))


def test_d2_pruning_passes_messages_over_the_knn_graph(real):
    """The float32 kNN search finds the dense float64 neighbours; the densest node (README recipe: sum mode,
    k = 5) is the first pick; the reverse messages spread the picks over the graph."""
    _, _, loss, labels, emb, _ = real
    from engine.selection.d2 import knn
    x = emb[:300].astype(np.float64)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    _dists, index = knn(torch.as_tensor(x, dtype=torch.float32), 5)
    assert np.array_equal(np.sort(index.numpy(), 1), np.sort(np.argsort(d, 1)[:, :5], 1))
    s = loss[:300]
    adj = np.zeros((300, 300))
    rows = np.repeat(np.arange(300), 5)
    adj[rows, index.numpy().ravel()] = adj[index.numpy().ravel(), rows] = 1
    density = (adj * np.exp(-d) * np.maximum(s, 1e-7)[None]).sum(1) + s
    kept = select("d2_pruning", s, 0.1, labels[:300], embeddings=x)
    assert np.argmax(density) in kept
    # reverse messages spread the picks: fewer kNN edges inside the kept set than taking the top densities
    top = np.argsort(-density)[:30]

    def inside(k):
        return adj[np.ix_(k, k)].sum()

    assert inside(kept) < inside(top)


def test_doubling_every_weight_is_doubling_the_lr_with_plain_sgd(real):
    ds, _, loss, labels, _, grads = real
    sel = select_weighted("craig", loss, 0.1, labels, gradients=grads)
    w = sel.weights / sel.weights.mean()
    cfg = TrainConfig(epochs=2, batch_size=50, lr=0.05, momentum=0.0, weight_decay=0.0, schedule="constant",
                      augment=False)

    def params(weights, lr):
        model = train("mlp", ds, cfg.model_copy(update={"lr": lr}), seed=3, indices=sel.indices, weights=weights,
                      evaluate_every_epoch=False, evaluate_at_end=False).model
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    doubled_weights, doubled_lr = params(2 * w, 0.05), params(w, 0.1)
    assert torch.allclose(doubled_weights, doubled_lr, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(params(w, 0.05), params(None, 0.05), atol=1e-3)  # the weights do change training
    assert torch.allclose(params(np.ones(len(w)), 0.05), params(None, 0.05), atol=1e-6)


def test_quick_sweep_with_every_coreset_logs_to_mlflow(in_tmp, shared_data):
    cfg = engine.load_config("quick", {
        "name": "coresets", "data.dataset": "mnist", "data.data_dir": str(shared_data), "data.train_size": 600,
        "data.test_size": 200, "model": "mlp", "train.epochs": 1, "train.batch_size": 64, "surrogate.epochs": 1,
        "sweep.score_epochs": [1], "sweep.methods": ["loss"], "sweep.strategies": CORESETS,
        "sweep.keep_ratios": [0.1], "sweep.seeds": [0], "sweep.full_data": False})
    torch.set_num_threads(1)
    result = engine.run(cfg)
    assert result.status == "FINISHED" and len(result.trials) == len(CORESETS)
    assert all(t.status == "FINISHED" for t in result.trials)
    track = tracker(None, str(in_tmp))
    assert track.get_run(result.run_id).data.tags["prunelab.gradient_projection"] == "none"
    for child in track.children(result.run_id):
        paths = {a.path for a in track.client.list_artifacts(child.info.run_id, "selection")}
        weighted = child.data.tags["strategy"] in ("craig", "gradmatch")
        assert ("selection/weights.npy" in paths) == weighted
        if weighted:
            w = np.load(track.download(child.info.run_id, "selection/weights.npy", in_tmp / child.info.run_id))
            assert len(w) == 60
