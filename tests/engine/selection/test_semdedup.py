"""SemDeDup (engine/selection/semdedup.py): against an independent loop of the reference's steps, on real data with
planted exact and near duplicates, and its budget options."""
import faiss
import numpy as np
import pytest
import torch

import engine
from engine.config import TrainConfig
from engine.data.dataset import from_arrays, load_dataset
from engine.errors import ConfigError
from engine.kinds.benchmark import pairs
from engine.scoring.batch import score_model
from engine.selection.base import keep_count, select
from engine.selection.semdedup import duplicate_similarity, keep_ratio_at
from engine.trainer import train
from tests.conftest import TEST_DEVICE


@pytest.fixture(scope="module")
def pixels(shared_data):
    """1,000 real MNIST digits as 784-wide pixel vectors (centred): embeddings with many close pairs."""
    ds = load_dataset("mnist", shared_data, train_size=1000, test_size=100)
    x = ds.x_train.reshape(len(ds), -1).double().numpy()
    return x - x.mean(0), ds.y_train.numpy()


def reference_loop(embeddings: np.ndarray, clusters: int, keep: str, seed: int, epsilon: float) -> np.ndarray:
    """The reference's steps, written out: normalise, faiss spherical k-means (100 iterations), nearest centroid by
    inner product, each cluster sorted by 1 − similarity to its centroid, descending (Python's stable sort), reversed
    for "easy", shuffled for "random" (numpy, the strategy's generator); then per cluster the column maxima of the
    strict upper triangle of the similarity matrix, and a sample is dropped when that exceeds 1 − ε."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    km = faiss.Kmeans(unit.shape[1], clusters, niter=100, seed=seed, spherical=True, min_points_per_centroid=1)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # as the strategy: float sums in the same order, the same centroids
    try:
        km.train(unit.astype(np.float32))
        to_centroid, nearest = km.index.search(unit.astype(np.float32), 1)
    finally:
        faiss.omp_set_num_threads(threads)
    rng = np.random.default_rng(seed)
    dropped = []
    for c in range(clusters):
        items = sorted(((i, 1 - float(to_centroid[i, 0])) for i in np.flatnonzero(nearest[:, 0] == c)),
                       key=lambda item: item[1], reverse=True)
        members = np.array([i for i, _ in items], dtype=np.int64)
        if not len(members):
            continue
        if keep == "easy":
            members = members[::-1]
        elif keep == "random":
            members = members[rng.permutation(len(members))]
        reps = torch.from_numpy(unit[members])
        triu = torch.triu(reps @ reps.T, diagonal=1)
        worst = triu.max(0).values.numpy()
        dropped += list(members[worst > 1 - epsilon])
    return np.setdiff1d(np.arange(len(embeddings)), dropped)


@pytest.mark.parametrize("keep", ["hard", "easy", "random"])
def test_semdedup_matches_an_independent_loop_of_the_reference(pixels, keep):
    """At several ε (the `epsilon` budget) and at the keep ratio each ε gives, the kept sets equal the loop's."""
    emb, labels = pixels
    scores = np.zeros(len(labels))
    for epsilon in (0.1, 0.3):
        expected = reference_loop(emb, 7, keep, 3, epsilon)
        ratio = len(expected) / len(labels)
        assert 0.05 < ratio < 0.99 and keep_count(ratio, len(labels)) == len(expected)
        assert keep_ratio_at(emb, epsilon, clusters=7, keep=keep, seed=3) == ratio
        for options in ({"epsilon": epsilon}, {}):
            kept = select("semdedup", scores, ratio, labels, seed=3, embeddings=emb, clusters=7, keep=keep, **options)
            np.testing.assert_array_equal(kept, expected, err_msg=f"epsilon {epsilon}, {options}")


def planted(cifar_npz, base: int, copies: int):
    """Real CIFAR-10 images with `copies` exact copies and `copies` copies shifted right by one pixel, each of a
    different real image, appended; and the cnn surrogate's penultimate embeddings after one epoch on all of it."""
    ds = load_dataset(cifar_npz, device=TEST_DEVICE, train_size=base, test_size=100)
    x, y = ds.x_train.cpu(), ds.y_train.cpu()
    src = np.random.default_rng(0).choice(base, 2 * copies, replace=False)
    exact, shift = src[:copies], src[copies:]
    shifted = torch.roll(x[shift], 1, dims=3)
    shifted[..., 0] = x[shift][..., 0]  # the column the roll brought round: the edge repeated
    data = from_arrays(torch.cat([x, x[exact], shifted]), torch.cat([y, y[exact], y[shift]]), ds.x_test.cpu(),
                       ds.y_test.cpu(), name="planted", augment=ds.augment).to(TEST_DEVICE)
    model = train("cnn", data, TrainConfig(epochs=1, batch_size=128), seed=0, evaluate_every_epoch=False,
                  evaluate_at_end=False).model
    emb = score_model(model, data, [], embeddings=True).embeddings
    n = np.arange(copies)
    return emb, data.y_train.cpu().numpy(), (exact, base + n), (shift, base + copies + n)


def test_semdedup_finds_planted_exact_and_near_duplicates(cifar_npz):
    """2,000 real CIFAR-10 images, 50 exact copies and 50 one-pixel shifts planted, embedded by a cnn trained one
    epoch on them: at ε just above 0 it drops one of each exact pair and nothing else; at each shifted pair's own
    similarity (0.97 to 0.99 here) it finds ≥ 95 % of them with the default clusters (2), while a threshold at
    their median similarity drops few of the other images; with the keep ratio of the planted count it finds every
    exact pair and most shifted ones. (More clusters split more pairs: 0.86-0.94 at 8-20 clusters, measured.)"""
    emb, labels, (exact_a, exact_b), (shift_a, shift_b) = planted(cifar_npz, 2000, 50)
    unit = emb.astype(np.float64) / np.linalg.norm(emb.astype(np.float64), axis=1, keepdims=True)
    n, others = len(labels), np.setdiff1d(np.arange(2000), np.concatenate([exact_a, shift_a]))
    zeros = np.zeros(n)
    dropped = np.setdiff1d(np.arange(n), select("semdedup", zeros, keep_ratio_at(emb, 1e-9), labels, 0, emb,
                                                epsilon=1e-9))
    assert len(dropped) == 50 and (np.isin(exact_a, dropped) ^ np.isin(exact_b, dropped)).all()
    similarity = (unit[shift_a] * unit[shift_b]).sum(1)
    natural = np.sort(unit[others] @ unit[others].T, axis=1)[:, -2]  # each other image's nearest neighbour
    assert np.median(similarity) > np.quantile(natural, 0.9)  # the planted pairs are nearer than natural ones
    m = duplicate_similarity(emb)
    found = (m[shift_a] > similarity - 1e-9) | (m[shift_b] > similarity - 1e-9)  # at its own ε
    assert found.mean() >= 0.95
    assert (m[others] > np.median(similarity)).mean() < 0.1
    kept = select("semdedup", zeros, (n - 100) / n, labels, 0, emb)
    found = ~np.isin(exact_a, kept) | ~np.isin(exact_b, kept), ~np.isin(shift_a, kept) | ~np.isin(shift_b, kept)
    assert found[0].all() and found[1].mean() >= 0.5  # 0.6 here; cutting 100 of 2,100 at random: about 0.09


def test_semdedup_budget_options_and_errors(pixels):
    emb, labels = pixels
    scores = np.zeros(len(labels))
    ratio = keep_ratio_at(emb, 0.1, clusters=7)
    with pytest.raises(ConfigError, match=f"semdedup with epsilon = 0.1 keeps {round(ratio * 1000)} of 1000 samples, "
                                          f"not 500: set the keep ratio to {ratio!r}"):
        select("semdedup", scores, 0.5, labels, embeddings=emb, clusters=7, epsilon=0.1)
    with pytest.raises(ConfigError, match="option epsilon = 1.5 is out of range"):
        select("semdedup", scores, 0.5, labels, embeddings=emb, epsilon=1.5)
    with pytest.raises(ConfigError, match="option keep = 'first' is out of range"):
        select("semdedup", scores, 0.5, labels, embeddings=emb, keep="first")
    with pytest.raises(ConfigError, match="needs embeddings"):
        select("semdedup", scores, 0.5, labels)
    kept = select("semdedup", scores, 0.5, labels, seed=1, embeddings=emb, clusters=5000)  # k clamped to n
    assert len(kept) == 500 and len(np.unique(kept)) == 500
    assert np.array_equal(kept, select("semdedup", scores, 0.5, labels, seed=1, embeddings=emb, clusters=5000))
    m = duplicate_similarity(emb)  # the default: one cluster per 1,000 samples (here 1)
    assert m.min() == 0 and m.max() <= 1 + 1e-12


def test_benchmark_all_holds_the_new_methods():
    config = engine.load_config("benchmark-mnist")
    compared = pairs(config)
    for pair in (("tracin", "hardest"), ("gradient_alignment", "hardest"), ("moso", "hardest"), ("el2n", "semdedup")):
        assert pair in compared
