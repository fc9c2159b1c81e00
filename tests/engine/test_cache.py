"""The content-addressed cache: stable keys, round trips, and damaged entries read as misses."""
import numpy as np
import torch

from engine.cache import Cache, cache_key
from engine.data import load_dataset
from engine.models import build_model
from engine.train import TrainConfig


def test_keys_follow_content_not_order():
    a = cache_key(model="cnn", cfg=TrainConfig(epochs=2), seed=1)
    assert a == cache_key(seed=1, cfg=TrainConfig(epochs=2), model="cnn")
    assert a != cache_key(model="cnn", cfg=TrainConfig(epochs=3), seed=1)
    labels = load_dataset("mnist-mini").y_train.numpy()
    assert cache_key(labels=labels) != cache_key(labels=labels[::-1].copy())


def test_round_trips_and_damaged_entries(tmp_path):
    cache = Cache(tmp_path)
    labels = load_dataset("mnist-mini").y_train.numpy()
    cache.save_arrays("scores", "k1", {"labels": labels})
    assert np.array_equal(cache.load_arrays("scores", "k1")["labels"], labels)
    state = build_model("mlp", (1, 28, 28), 10, seed=0).state_dict()
    cache.save_state("surrogate", "k2", state)
    loaded = cache.load_state("surrogate", "k2")
    assert all(torch.equal(state[k], loaded[k]) for k in state)
    assert cache.hits == 2 and cache.misses == 0

    path = next((tmp_path / "scores").rglob("k1.npz"))
    path.write_bytes(path.read_bytes()[:100])  # a run killed mid-write elsewhere, or a full disk
    assert cache.load_arrays("scores", "k1") is None and cache.misses == 1
    assert cache.load_arrays("scores", "absent") is None and cache.misses == 2
    assert Cache(None).load_arrays("scores", "k1") is None  # disabled
