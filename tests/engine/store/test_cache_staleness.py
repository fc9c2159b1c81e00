"""Stale cache entries: a scorer or model whose code changed under the same name, or a data set whose images
changed under the same labels, gets a new key, so nothing computed by the old one is reused."""
import numpy as np
import pytest
import torch
from torch import nn

from engine.architectures import Classifier
from engine.config import TrainConfig
from engine.data.dataset import load_dataset
from engine.nets import MODELS, register_model
from engine.scoring import surrogate as surrogate_module
from engine.scoring.batch import score_model
from engine.scoring.registry import SCORERS, register_scorer
from engine.scoring.surrogate import compute_scores
from engine.store.cache import Cache, code_digest
from engine.trainer import train

CFG = TrainConfig(epochs=1, batch_size=100)


@pytest.fixture(scope="module")
def mnist(shared_data):
    return load_dataset("mnist", shared_data, "cpu", train_size=300, test_size=100)


@pytest.fixture
def trainings(monkeypatch):
    """Counts the surrogates actually trained (not read from the cache)."""
    calls = []
    real = surrogate_module.train
    monkeypatch.setattr(surrogate_module, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def probe_version(top: bool):
    """Two versions of one scorer: the same module, name and qualified name, different code."""
    if top:
        def probe(model, x, y, logits):
            return logits.max(1).values
    else:
        def probe(model, x, y, logits):
            return logits.gather(1, y[:, None])[:, 0]
    return probe


def narrow(input_shape, num_classes):
    c, h, w = input_shape
    return Classifier(nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 16), nn.ReLU()), nn.Linear(16, num_classes))


def wide(input_shape, num_classes):
    c, h, w = input_shape
    return Classifier(nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 64), nn.ReLU()), nn.Linear(64, num_classes))


def test_code_digest_follows_the_source_and_resolves_refs():
    old, new = probe_version(True), probe_version(False)
    assert old.__qualname__ == new.__qualname__ and code_digest(old) != code_digest(new)
    assert code_digest(MODELS["mlp"]) == code_digest(MODELS["mlp"].load())  # a Ref hashes what it names
    assert code_digest(narrow, whole_module=True) != code_digest(wide, whole_module=True)
    assert code_digest(narrow, whole_module=True) != code_digest(narrow)


def test_a_scorer_changed_under_the_same_name_is_recomputed(mnist, tmp_path, trainings):
    cache = Cache(tmp_path)
    try:
        register_scorer("stale_probe", probe_version(True))
        first = compute_scores(mnist, "mlp", ["stale_probe"], epochs=[1], inits=1, train_cfg=CFG, cache=cache)
        register_scorer("stale_probe", probe_version(False))  # same name and qualname, new code
        second = compute_scores(mnist, "mlp", ["stale_probe"], epochs=[1], inits=1, train_cfg=CFG, cache=cache)
    finally:
        SCORERS.pop("stale_probe", None)
    assert len(trainings) == 1  # the surrogate's checkpoint is reused: only the scores are stale
    model = train("mlp", mnist, CFG, seed=0).model
    model.eval()
    with torch.no_grad():
        logits = model(mnist.normalize(mnist.x_train))
    np.testing.assert_allclose(first.get("stale_probe", 1), logits.max(1).values.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(second.get("stale_probe", 1), logits.gather(1, mnist.y_train[:, None])[:, 0].numpy(),
                               rtol=1e-5, atol=1e-6)


def test_a_model_changed_under_the_same_name_retrains(mnist, tmp_path, trainings):
    cache = Cache(tmp_path)
    kwargs = {"epochs": [1], "inits": 1, "train_cfg": CFG, "cache": cache}
    try:
        register_model("stale_net", narrow)
        first = compute_scores(mnist, "stale_net", ["loss"], **kwargs)
        register_model("stale_net", wide)  # same name, new code
        second = compute_scores(mnist, "stale_net", ["loss"], **kwargs)
        assert len(trainings) == 2
        register_model("stale_net", narrow)  # the old code again: its entries are still good
        again = compute_scores(mnist, "stale_net", ["loss"], **kwargs)
    finally:
        MODELS.pop("stale_net", None)
    assert len(trainings) == 2
    np.testing.assert_array_equal(again.get("loss", 1), first.get("loss", 1))
    assert not np.allclose(second.get("loss", 1), first.get("loss", 1))


def test_changed_images_with_the_same_labels_get_a_new_key(mnist, tmp_path, trainings):
    cache = Cache(tmp_path)
    flipped = mnist.replace(x_train=mnist.x_train.flip(-1))  # mirrored digits, the same labels and names
    assert flipped.name == mnist.name and torch.equal(flipped.y_train, mnist.y_train)
    assert flipped.digest() != mnist.digest()
    first = compute_scores(mnist, "mlp", ["loss"], epochs=[1], inits=1, train_cfg=CFG, cache=cache)
    second = compute_scores(flipped, "mlp", ["loss"], epochs=[1], inits=1, train_cfg=CFG, cache=cache)
    assert len(trainings) == 2 and second.surrogates_trained == 1
    reference = score_model(train("mlp", flipped, CFG, seed=0).model, flipped, ["loss"]).scores["loss"]
    np.testing.assert_allclose(second.get("loss", 1), reference, rtol=1e-5, atol=1e-6)
    assert not np.allclose(second.get("loss", 1), first.get("loss", 1))
