"""Data larger than the device: a budget of 0 MB keeps the images in host memory and streams every batch; the
trainer, the scoring pass and selection must give what the on-device path gives, bit for bit on the CPU."""
import numpy as np
import pytest
import torch

from engine.config import TrainConfig
from engine.data.dataset import load_dataset
from engine.scoring.surrogate import compute_scores
from engine.selection import select
from engine.trainer import evaluate, train
from tests.conftest import TEST_DEVICE


def same(a, b) -> None:
    a, b = np.asarray(a), np.asarray(b)
    if TEST_DEVICE == "cpu":
        np.testing.assert_array_equal(a, b)
    else:  # CUDA kernels may differ run to run; the data the two paths feed them may not
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def both(cifar_npz):
    """The CIFAR-10 subset on the device and streamed from host memory, with its crop+flip augmentation."""
    on = load_dataset(cifar_npz, device=TEST_DEVICE, train_size=500, test_size=200)
    off = load_dataset(cifar_npz, device=TEST_DEVICE, train_size=500, test_size=200, device_budget_mb=0)
    return on.replace(augment="crop_flip"), off.replace(augment="crop_flip")


def test_budget_decides_the_path(both, cifar_npz):
    on, off = both
    assert not on.streamed and on.data_path == "device" and off.streamed and off.data_path == "host"
    assert off.device == torch.device(TEST_DEVICE) and off.y_train.device == off.device
    big_enough = (on.x_train.numel() + on.x_test.numel()) / 2**20
    assert not load_dataset(cifar_npz, device=TEST_DEVICE, train_size=500, test_size=200,
                            device_budget_mb=big_enough).streamed
    assert load_dataset(cifar_npz, device=TEST_DEVICE, train_size=500, test_size=200,
                        device_budget_mb=big_enough * 0.99).streamed
    if TEST_DEVICE != "cpu":
        assert off.x_train.device.type == "cpu" and off.x_train.is_pinned()


def test_training_is_the_same_on_both_paths(both):
    on, off = both
    kept = np.sort(np.random.default_rng(0).choice(len(on), 300, replace=False))
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05)  # 5 batches an epoch, the last one partial
    runs = [train("cnn", ds, cfg, seed=3, indices=kept) for ds in (on, off)]
    for p, q in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values()):
        same(p.cpu(), q.cpu())
    same([h["train_loss"] for h in runs[0].history], [h["train_loss"] for h in runs[1].history])
    assert runs[0].test_accuracy == runs[1].test_accuracy and runs[0].steps == 10
    same(evaluate(runs[0].model, on, "train"), evaluate(runs[0].model, off, "train"))
    # airbench initialises its whitening from the first training images: gathered from the host too
    short = TrainConfig(steps=1, batch_size=8)
    air = [train("airbench", ds, short, seed=1, evaluate_at_end=False) for ds in (on, off)]
    same(air[0].model.features[0].weight.cpu(), air[1].model.features[0].weight.cpu())


def test_scores_and_kept_indices_are_the_same_on_both_paths(both):
    on, off = both
    cfg = TrainConfig(epochs=1, batch_size=100)
    results = [compute_scores(ds, "cnn", ["loss", "grad_norm", "el2n", "forgetting"], epochs=[1], inits=1,
                              train_cfg=cfg, seed=0, batch_size=96, embeddings=True, gradients=True)
               for ds in (on, off)]
    a, b = results
    for name in ("loss", "grad_norm", "el2n", "forgetting"):
        same(a.get(name), b.get(name))
    assert a.get("grad_norm").std() > 0  # real scores, not a constant
    same(a.embeddings[1], b.embeddings[1])
    same(a.gradients[1], b.gradients[1])
    same(a.predictions[1], b.predictions[1])
    labels = on.y_train.cpu().numpy()
    for strategy, extra in (("hardest", {}), ("kcenter_greedy", {"embeddings": a.embeddings[1]})):
        mine = select(strategy, a.get("el2n"), 0.3, labels, seed=0, **extra)
        theirs = select(strategy, b.get("el2n"), 0.3, labels, seed=0,
                        **({"embeddings": b.embeddings[1]} if extra else {}))
        np.testing.assert_array_equal(mine, theirs)


def test_a_run_on_the_host_path_finishes_and_says_so(in_tmp):
    import engine
    from engine.store.tracking import tracker

    overrides = {"data.dataset": "mnist-mini", "data.train_size": 300, "data.test_size": 100, "data.device_budget_mb": 0, "model": "mlp", "train.epochs": 1,
                 "train.batch_size": 64, "surrogate.epochs": 1, "sweep.score_epochs": [1], "sweep.methods": ["loss"],
                 "sweep.keep_ratios": [0.5], "sweep.seeds": [0], "sweep.full_data": False, "device": "cpu"}
    result = engine.run(engine.load_config("quick", overrides))
    assert result.status == "FINISHED" and [t.status for t in result.trials] == ["FINISHED"]
    parent = tracker(None, str(in_tmp)).get_run(result.run_id)
    assert parent.data.tags["prunelab.data_path"] == "host"
