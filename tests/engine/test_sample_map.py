"""The embedding map's maths (engine/sample_map.py) against independent computations on real MNIST: exact cosine
nearest neighbours against a per-sample loop, the PCA projection against an SVD, and which models have
embeddings to capture."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from engine.architectures import build_model
from engine.data.dataset import load_dataset
from engine.errors import ConfigError
from engine.sample_map import build_map, cosine_neighbours, embeddable, pca_2d, require_umap

UMAP = importlib.util.find_spec("umap") is not None


@pytest.fixture(scope="module")
def pixels(shared_data) -> np.ndarray:
    """400 real MNIST digits as float64 vectors (every one has ink, so no zero vector and no tie at cosine 0)."""
    ds = load_dataset("mnist", shared_data, "cpu", 400, 100)
    return ds.x_train.numpy().reshape(400, -1).astype(np.float64)


@pytest.fixture(scope="module")
def embeddings() -> np.ndarray:
    """Surrogate 0's penultimate embeddings (mlp, 1 epoch) of 300 mnist-mini digits, as the runs log them."""
    import engine

    return engine.score("mnist-mini", "mlp", ["loss"], epochs=1, train_size=300, test_size=100, device="cpu",
                        embeddings=True)["embeddings"]


def neighbours_by_loop(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k most cosine-similar other rows, one row at a time in float64: sort by (−cosine, index)."""
    norms = np.sqrt((x * x).sum(axis=1))
    index, sims = np.zeros((len(x), k), dtype=np.int64), np.zeros((len(x), k))
    for i in range(len(x)):
        cos = [(-(x[i] @ x[j]) / (norms[i] * norms[j]), j) for j in range(len(x)) if j != i]
        best = sorted(cos)[:k]
        index[i] = [j for _, j in best]
        sims[i] = [-c for c, _ in best]
    return index, sims


def test_cosine_neighbours_match_a_loop_exactly(pixels):
    index, sims = neighbours_by_loop(pixels, 10)
    for block_mb in (256.0, 0.01):  # one block, and blocks of a few rows
        found, similar = cosine_neighbours(pixels, 10, block_mb=block_mb)
        assert found.dtype == np.int32 and found.shape == (400, 10) and similar.dtype == np.float64
        np.testing.assert_array_equal(found, index)
        np.testing.assert_allclose(similar, sims, rtol=1e-12, atol=1e-12)


def test_float32_neighbours_agree_with_float64_where_the_order_is_clear(embeddings):
    """The runs' path (float32 embeddings) against the float64 loop: the same neighbours wherever consecutive
    similarities differ by more than float32 can tell, and similarities to 1e-5."""
    x = np.asarray(embeddings, dtype=np.float64)
    assert (np.abs(x).sum(axis=1) > 0).all()
    index, sims = neighbours_by_loop(x, 5)
    found, similar = cosine_neighbours(embeddings.astype(np.float32), 5)
    assert similar.dtype == np.float32
    np.testing.assert_allclose(similar, sims, atol=1e-5)
    clear = (np.diff(sims, axis=1) < -1e-5).all(axis=1)
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(found[clear], index[clear])


def test_neighbours_of_tiny_sets_shrink_k():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    found, sims = cosine_neighbours(x, 10)
    assert found.tolist() == [[2, 1], [2, 0], [0, 1]]  # a tie at cos 1/√2: the lower index first
    np.testing.assert_allclose(sims, [[2 ** -0.5, 0], [2 ** -0.5, 0], [2 ** -0.5, 2 ** -0.5]], atol=1e-15)
    assert cosine_neighbours(x[:1], 10)[0].shape == (1, 0)


def test_pca_matches_the_svd_of_the_centred_data(embeddings):
    x = np.asarray(embeddings, dtype=np.float64)
    projection, explained = pca_2d(embeddings)
    centred = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    for axis in range(2):
        expected = u[:, axis] * s[axis]
        sign = np.sign(vt[axis][np.argmax(np.abs(vt[axis]))])  # the largest loading positive
        np.testing.assert_allclose(projection[:, axis], sign * expected, rtol=1e-10, atol=1e-8 * s[0])
        assert explained[axis] == pytest.approx(s[axis] ** 2 / (s ** 2).sum(), rel=1e-10)
    assert explained[0] >= explained[1] > 0


def test_build_map_logs_a_bounded_float32_map(embeddings):
    found = build_map(embeddings, epoch=1, k=10)
    n = len(embeddings)
    assert found.projection.shape == (n, 2) and found.projection.dtype == np.float32
    assert found.neighbours.shape == (n, 10) and found.neighbours.dtype == np.int32
    assert found.similarity.shape == (n, 10) and found.similarity.dtype == np.float32
    size = found.projection.nbytes + found.neighbours.nbytes + found.similarity.nbytes
    assert size == n * (2 + 2 * 10) * 4  # 4.4 MB at 50,000 samples, whatever the embedding width
    info = found.info()
    assert info == {"epoch": 1, "projection": "pca", "k": 10, "metric": "cosine", "samples": n,
                     "explained_variance": pytest.approx(found.explained)}
    with pytest.raises(ConfigError, match="surrogate.projection = 'tsne'"):
        build_map(embeddings, 1, "tsne")


@pytest.mark.skipif(UMAP, reason="umap-learn is installed: the message for its absence cannot show")
def test_umap_without_umap_learn_names_the_extra(embeddings):
    with pytest.raises(ConfigError, match=r"pip install 'prunelab\[umap\]'"):
        require_umap()
    with pytest.raises(ConfigError, match="umap-learn"):
        build_map(embeddings, 1, "umap")


@pytest.mark.skipif(not UMAP, reason="umap-learn is not installed (the optional extra prunelab[umap])")
def test_umap_projection_is_seeded_and_keeps_neighbours_together(embeddings):
    first = build_map(embeddings, 1, "umap", seed=3)
    again = build_map(embeddings, 1, "umap", seed=3)
    assert first.method == "umap" and first.projection.shape == (len(embeddings), 2)
    np.testing.assert_array_equal(first.projection, again.projection)
    # a sample's nearest embedding neighbour lies nearer on the map than a random sample does, for most samples
    xy = first.projection.astype(np.float64)
    near = np.linalg.norm(xy - xy[first.neighbours[:, 0]], axis=1)
    other = np.linalg.norm(xy - xy[np.random.default_rng(0).permutation(len(xy))], axis=1)
    assert (near < other).mean() > 0.8


def test_which_models_have_embeddings_to_capture():
    import torchvision

    from engine.architectures.external import External

    assert embeddable(build_model("cnn", (1, 28, 28), 10)) and embeddable(build_model("mlp", (1, 28, 28), 10))

    class Embeds(nn.Module):  # a plugin's model with embed() and no head
        def __init__(self):
            super().__init__()
            self.body, self.out = nn.Linear(4, 3), nn.Linear(3, 2)

        def forward(self, x):
            return self.out(self.embed(x))

        def embed(self, x):
            return torch.relu(self.body(x))

    assert embeddable(Embeds())
    assert not embeddable(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))  # neither head nor embed
    squeeze = External(torchvision.models.get_model("squeezenet1_0", weights=None, num_classes=10))
    assert squeeze.head is None and not embeddable(squeeze)  # a conv classifier: no Linear input to capture
