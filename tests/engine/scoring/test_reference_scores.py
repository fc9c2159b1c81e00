"""Reference tests of the scores the other files leave at float32 precision, in float64 against independent loops.

Real MNIST (300 digits), prunelab's own `mlp`/`cnn` made float64 after a few training
steps; each reference is written from the paper and the reference code's description
(loops over samples and classes, numpy and scipy), never from prunelab's code. Scores
agree at rtol 1e-10; picks are equal, or equal up to a stated rounding.
"""
import numpy as np
import pytest
import torch
from scipy.special import log_softmax

from engine.config import TrainConfig
from engine.data.dataset import load_dataset
from engine.scoring import embedding_scores
from engine.scoring.batch import score_model
from engine.scoring.embedding_scores import cal_score, knn_within_class, moderate_score, prototypes_score
from engine.scoring.forgetting import ForgettingCounter
from engine.scoring.surrogate import compute_scores
from engine.selection.registry import STRATEGIES
from engine.trainer import to_model_layout, train

EXACT = 1e-10


@pytest.fixture(scope="module")
def mnist(shared_data):
    return load_dataset("mnist", shared_data, "cpu", train_size=300, test_size=100)


@pytest.fixture(scope="module")
def trained(mnist):
    """An mlp after 2 epochs, in float64: its logits, penultimate embeddings and labels, all float64."""
    model = train("mlp", mnist, TrainConfig(epochs=2, batch_size=50), seed=6, evaluate_every_epoch=False,
                  evaluate_at_end=False).model.double().eval()
    result = score_model(model, mnist, [], embeddings=True)
    with torch.no_grad():
        logits = model(mnist.normalize(mnist.x_train, torch.float64)).numpy()
    assert result.embeddings.dtype == np.float64
    return model, result.embeddings, logits, mnist.y_train.numpy()


def test_loss_and_el2n_follow_their_formulas_in_float64(mnist):
    """ℓ = −log softmax(z)_y (Jiang et al.) and EL2N = ‖softmax(z) − onehot(y)‖₂ (Paul et al.), sample by sample."""
    model = train("cnn", mnist, TrainConfig(steps=5, batch_size=50), seed=0).model.double()
    result = score_model(model, mnist, ["loss", "el2n"], batch_size=64)
    with torch.no_grad():
        logits = model(to_model_layout(mnist.normalize(mnist.x_train, torch.float64))).numpy()
    labels = mnist.y_train.numpy()
    loss, el2n = np.zeros(len(labels)), np.zeros(len(labels))
    for i, (z, y) in enumerate(zip(logits, labels)):
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        loss[i] = -np.log(p[y])
        el2n[i] = np.sqrt(((p - np.eye(10)[y]) ** 2).sum())
    np.testing.assert_allclose(result.scores["loss"], loss, rtol=EXACT, atol=0)
    np.testing.assert_allclose(result.scores["el2n"], el2n, rtol=EXACT, atol=0)


def test_random_draws_numpys_generator_seeded_by_the_trial(mnist):
    """The baseline: U(0, 1) from numpy's default generator seeded with the trial's seed, stored as float32."""
    for seed in (0, 7):
        scores = compute_scores(mnist, "mlp", ["random"], epochs=[1], seed=seed).get("random")
        np.testing.assert_array_equal(scores, np.random.default_rng(seed).random(len(mnist)).astype(np.float32))


def test_moderate_is_the_distance_to_the_class_median_in_float64(trained):
    """Xia et al.: ‖e_i − median of the class's embeddings‖₂, the median per coordinate within the class."""
    _, emb, _, labels = trained
    reference = np.zeros(len(labels))
    for i in range(len(labels)):
        same = emb[labels == labels[i]]
        median = np.array([np.median(same[:, d]) for d in range(emb.shape[1])])
        reference[i] = np.sqrt(((emb[i] - median) ** 2).sum())
    np.testing.assert_allclose(moderate_score(None, emb, labels), reference, rtol=EXACT, atol=0)


def deepcore_cal(emb: np.ndarray, logits: np.ndarray, labels: np.ndarray, k: int):
    """DeepCore `cal.py` as its description reads (balance = True, Euclidean): per class, each sample's k nearest
    others by distance (ascending, the sample itself first and dropped) and the mean over them of
    ½ p log(p/q) + ½ q log(q/p); returns the neighbours and the KL."""
    logp = log_softmax(logits, axis=1)
    near, kl = np.zeros((len(labels), k), dtype=np.int64), np.zeros(len(labels))
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        dist = np.sqrt(((emb[rows, None, :] - emb[None, rows, :]) ** 2).sum(2))
        for a, i in enumerate(rows):
            order = np.argsort(dist[a], kind="stable")
            order = order[order != a][:k]  # the nearest others
            near[i] = rows[order]
            terms = [0.5 * np.exp(logp[i]) * (logp[i] - logp[j]) + 0.5 * np.exp(logp[j]) * (logp[j] - logp[i])
                     for j in near[i]]
            kl[i] = np.mean([t.sum() for t in terms])
    return near, kl


def test_cal_is_minus_deepcores_kl_and_keeps_its_picks(trained):
    """The score is −(DeepCore's mean symmetric KL) at 1e-10 (`order = "paper"`: +KL), on the same neighbours; and
    `cal/class_balanced` keeps what DeepCore's cal.py keeps: in each class its lowest KL, the class's quota
    round(f·n_c) in DeepCore, ⌊f·n_c⌋ plus largest remainders here (the two quotas differ by at most one, where
    f·n_c ends in .5: both are then prefixes of the same order)."""
    model, emb, logits, labels = trained
    near, kl = deepcore_cal(emb, logits, labels, 10)
    found = knn_within_class(emb, labels, 10)
    same = np.array([set(a) == set(b) for a, b in zip(found, near)])
    assert same.all(), f"{(~same).sum()} samples with other neighbours"  # faiss (float32) finds the same sets
    np.testing.assert_allclose(cal_score(model, emb, labels), -kl, rtol=EXACT, atol=0)
    np.testing.assert_allclose(cal_score(model, emb, labels, order="paper"), kl, rtol=EXACT, atol=0)

    fraction, scores = 0.5, cal_score(model, emb, labels)
    strategy = STRATEGIES["class_balanced"]
    kept = np.asarray(strategy.fn.load()(scores, int(fraction * len(labels)), labels, 0, None,
                                         **{**strategy.defaults, "order": "hardest"}))
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        ascending = rows[np.argsort(kl[rows], kind="stable")]
        ours, theirs = np.intersect1d(kept, rows), ascending[:round(fraction * len(rows))]
        assert abs(len(ours) - len(theirs)) <= 1 and (len(ours) == len(theirs) or len(rows) % 2 == 1)
        np.testing.assert_array_equal(np.sort(ours), np.sort(ascending[:len(ours)]))  # the lowest KL of the class


def test_prototypes_is_the_cosine_distance_to_the_nearest_centroid_of_the_class(trained, monkeypatch):
    """Sorscher et al. Sec. 5: 1 − max_m cos(e_i, μ_m) over the k-means centroids of the sample's own class. The
    centroids are faiss's (float32); given them, the score is recomputed in float64 from the float64 embeddings
    (agreement 1e-6: the scorer normalises in float32 for faiss). With one centroid per class the centroid is the
    mean direction of the class's unit vectors."""
    _, emb, _, labels = trained
    fitted = []

    class Spy(embedding_scores.faiss.Kmeans):
        def train(self, x, *args, **kwargs):
            fitted.append(self)
            return super().train(x, *args, **kwargs)

    monkeypatch.setattr(embedding_scores.faiss, "Kmeans", Spy)
    scores = prototypes_score(None, emb, labels, clusters=4)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    reference = np.zeros(len(labels))
    for c, km in zip(np.unique(labels), fitted):  # one k-means per class, in class order
        rows = labels == c
        centroids = km.centroids.astype(np.float64)
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        reference[rows] = [1 - max(u @ m for m in centroids) for u in unit[rows]]
    assert len(fitted) == 10 and all(km.centroids.shape[0] == 4 for km in fitted)
    np.testing.assert_allclose(scores, reference, rtol=0, atol=1e-6)
    one = prototypes_score(None, emb, labels, clusters=1)
    for c in np.unique(labels):
        rows = labels == c
        direction = unit[rows].mean(0) / np.linalg.norm(unit[rows].mean(0))
        np.testing.assert_allclose(one[rows], 1 - unit[rows] @ direction, rtol=0, atol=1e-5)
    assert (scores <= one + 1e-6).mean() > 0.85  # four prototypes fit most samples closer than one


def test_forgetting_never_learned_option_leaves_them_at_zero_as_deepcore(mnist):
    """`never_learned = "zero"` (DeepCore's forgetting.py) against the default max + 1, on one recorded run."""
    default, deepcore = ForgettingCounter(len(mnist), "cpu"), ForgettingCounter(len(mnist), "cpu", "zero")
    learned = np.zeros(len(mnist), bool)

    def record(idx, logits, y):
        learned[idx.numpy()] |= (logits.argmax(1) == y).numpy()

    train("mlp", mnist, TrainConfig(epochs=2, batch_size=50, lr=0.05), seed=0, observers=[default, deepcore, record])
    assert 0 < (~learned).sum() < len(learned)  # some never learned in two epochs
    ours, theirs = default.scores(), deepcore.scores()
    np.testing.assert_array_equal(theirs[~learned], 0)
    np.testing.assert_array_equal(ours[~learned], ours[learned].max() + 1)
    np.testing.assert_array_equal(ours[learned], theirs[learned])


def test_input_grad_norm_in_float32_stays_within_the_stated_bound_of_float64(mnist):
    """The methods page's bound for an early model: float32 and float64 ‖∂L/∂x‖ differ by up to 1.29 % on MNIST `cnn`
    after 6 steps (max-pool ties on the flat background; measured on 10 000 digits, docs/guide/scoring.md#precision),
    most samples by ~1e-7."""
    model = train("cnn", mnist, TrainConfig(steps=6, batch_size=50), seed=0).model
    single = score_model(model, mnist, ["input_grad_norm"]).scores["input_grad_norm"].astype(np.float64)
    double = score_model(model.double(), mnist, ["input_grad_norm"]).scores["input_grad_norm"]
    relative = np.abs(single - double) / double
    assert relative.max() < 0.0129 and np.median(relative) < 1e-6
