"""The trainer and models: real accuracy, determinism, budgets, schedules, and no Textual in the engine."""
import subprocess
import sys

import pytest
import torch

from engine.architectures import build_model
from engine.config import TrainConfig
from engine.data.dataset import load_dataset
from engine.errors import ConfigError, TrainingDiverged, UnknownNameError
from engine.store.events import BatchProgress, EpochEnd
from engine.trainer import lr_factor, train


@pytest.fixture(scope="module")
def mnist_small(shared_data):
    return load_dataset("mnist", shared_data, train_size=3000, test_size=1000)


def test_cnn_learns_real_mnist(mnist_small):
    events = []
    result = train("cnn", mnist_small, TrainConfig(epochs=2, lr=0.05), seed=0, on_event=events.append)
    assert result.test_accuracy > 0.90  # chance is 0.10
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in epochs] == [1, 2] and "test_accuracy" in epochs[-1].metrics
    assert any(isinstance(e, BatchProgress) for e in events)
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]


def test_same_seed_same_weights_different_seed_differs(mnist_small):
    cfg = TrainConfig(epochs=1, batch_size=256)
    a = train("mlp", mnist_small, cfg, seed=3).model.state_dict()
    b = train("mlp", mnist_small, cfg, seed=3).model.state_dict()
    c = train("mlp", mnist_small, cfg, seed=4).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.weight"], c["head.weight"])


def test_subset_and_step_budget(mnist_small):
    idx = torch.arange(0, 3000, 3).numpy()
    result = train("mlp", mnist_small, TrainConfig(steps=7, batch_size=100), indices=idx)
    assert result.steps == 7 and result.samples == 700 and result.epochs == 1
    result = train("mlp", mnist_small, TrainConfig(steps=25, batch_size=100), indices=idx)
    assert result.steps == 25 and result.epochs == 3  # 10 batches per epoch


def test_test_set_evaluated_every_epoch_at_the_end_or_never(mnist_small, monkeypatch):
    import engine.trainer as train_module
    calls = []
    real = train_module.evaluate
    monkeypatch.setattr(train_module, "evaluate", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    cfg = TrainConfig(epochs=2, batch_size=256)
    every = train("mlp", mnist_small, cfg)
    assert len(calls) == 2 and all("test_accuracy" in h for h in every.history)
    calls.clear()
    end = train("mlp", mnist_small, cfg, evaluate_every_epoch=False)
    assert len(calls) == 1 and "test_accuracy" in end.history[-1] and "test_accuracy" not in end.history[0]
    assert end.test_accuracy == pytest.approx(every.test_accuracy)  # same seed, same model
    calls.clear()
    never = train("mlp", mnist_small, cfg, evaluate_every_epoch=False, evaluate_at_end=False)
    assert calls == [] and never.test_accuracy != never.test_accuracy  # NaN: nothing was measured
    assert never.train_loss == pytest.approx(end.train_loss)


def test_checkpoints_at_requested_epochs(mnist_small):
    seen = []
    train("mlp", mnist_small, TrainConfig(epochs=3), checkpoint_epochs=[0, 2, 3],
          on_checkpoint=lambda e, m: seen.append((e, m.head.weight.detach().clone())))
    assert [e for e, _ in seen] == [0, 2, 3]
    assert not torch.equal(seen[0][1], seen[1][1])
    with pytest.raises(ConfigError, match="beyond the training budget of 3 epochs"):
        train("mlp", mnist_small, TrainConfig(epochs=3), checkpoint_epochs=[4])


def test_divergence_is_reported(mnist_small):
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        train("mlp", mnist_small, TrainConfig(epochs=1, lr=1e6, schedule="constant", momentum=0.0))


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "onecycle"])
def test_schedules_shape(schedule):
    cfg = TrainConfig(schedule=schedule, step_epochs=1, gamma=0.5)
    f = lr_factor(cfg, total_steps=100, batches_per_epoch=10)
    values = [f(s) for s in range(101)]
    assert all(0 <= v <= 1.0 + 1e-9 for v in values)
    if schedule == "constant":
        assert set(values) == {1.0}
    elif schedule == "step":
        assert values[9] == 1.0 and values[10] == 0.5 and values[25] == 0.25
    else:
        assert values[-1] < 0.01 and max(values) == pytest.approx(1.0, abs=0.02)


def test_models_take_shape_from_data(cifar_npz):
    cifar = load_dataset(cifar_npz, train_size=64, test_size=20)
    for name in ["mlp", "cnn", "resnet18"]:
        model = build_model(name, cifar.input_shape, cifar.num_classes, seed=0)
        out = model(cifar.normalize(cifar.x_train[:4]))
        assert out.shape == (4, 10)
        assert model.embed(cifar.normalize(cifar.x_train[:4])).ndim == 2
    resnet = build_model("resnet18", (3, 32, 32), 10)
    assert resnet.features[0].kernel_size == (3, 3) and resnet.features[0].stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in resnet.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in resnet.modules()) == 20
    with pytest.raises(UnknownNameError, match="unknown model 'vit'"):
        build_model("vit", (1, 28, 28), 10)


def test_resnet18_trains_a_step_on_cifar(cifar_npz):
    cifar = load_dataset(cifar_npz, train_size=200, test_size=100)
    result = train("resnet18", cifar, TrainConfig(steps=2, batch_size=64))
    assert result.steps == 2 and 0.0 <= result.test_accuracy <= 1.0


def test_engine_imports_no_textual():
    code = "import sys, engine, engine.cli, engine.trainer, engine.api, engine.runner.runner; print(any(m.startswith('textual') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
