"""The trainer and models: real accuracy, determinism, budgets, schedules, and no Textual in the engine."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from engine.architectures import build_model
from engine.cancel import Cancelled, CancelToken
from engine.config import TrainConfig
from engine.data.dataset import load_dataset
from engine.errors import ConfigError, TrainingDiverged, UnknownNameError
from engine.store.events import BatchProgress, EpochEnd
from engine.train_hooks import STOP, Checkpoints, Hooks, Observe, PlanEpochs, SampleWeights, TrainHook
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
def test_schedules_follow_their_closed_forms(schedule):
    """100 steps, 10 per epoch; onecycle warms up over 15 % of the steps from 0.1 to 1, then falls linearly to 0."""
    import math
    cfg = TrainConfig(schedule=schedule, step_epochs=2, gamma=0.5, warmup=0.15)
    f = lr_factor(cfg, total_steps=100, batches_per_epoch=10)
    closed = {"constant": lambda s: 1.0,
              "step": lambda s: 0.5 ** (s // 20),
              "cosine": lambda s: 0.5 * (1 + math.cos(math.pi * s / 100)),
              "onecycle": lambda s: 0.1 + 0.9 * s / 15 if s < 15 else (100 - s) / 85}[schedule]
    for s in (0, 1, 7, 14, 15, 19, 20, 39, 40, 50, 73, 99, 100):
        assert f(s) == pytest.approx(closed(s), rel=1e-12, abs=1e-15), s


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


def test_resnet18_steps_lower_the_loss_on_a_fixed_batch(cifar_npz):
    """The trainer's optimizer on ResNet18 (lr 0.01): three steps on one batch of 64 lower its loss by > 10 %."""
    from engine.trainer import make_optimizer, to_model_layout
    cifar = load_dataset(cifar_npz, train_size=64, test_size=20)
    model = build_model("resnet18", cifar.input_shape, cifar.num_classes, seed=0).train()
    optimizer = make_optimizer(model, TrainConfig(lr=0.01, schedule="constant"))
    x, y = to_model_layout(cifar.normalize(cifar.x_train)), cifar.y_train
    losses = []
    for _ in range(4):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.9 * losses[0], losses
    result = train("resnet18", cifar, TrainConfig(steps=2, batch_size=32))
    assert result.steps == 2 and len(result.history) >= 1


def test_engine_imports_no_textual():
    code = "import sys, engine, engine.cli, engine.trainer, engine.api, engine.runner.runner; print(any(m.startswith('textual') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- hooks
NO_EVAL = {"evaluate_every_epoch": False, "evaluate_at_end": False}


def test_a_checkpoint_that_says_stop_ends_training_there_on_the_full_budgets_schedule(mnist_small):
    cfg = TrainConfig(epochs=4, batch_size=500)  # 6 batches an epoch; the learning rate changes every step
    at_two = {}
    full = train("mlp", mnist_small, cfg, hooks=[Checkpoints([2], lambda e, m: at_two.update(
        {k: v.clone() for k, v in m.state_dict().items()}))], **NO_EVAL)
    stopped = train("mlp", mnist_small, cfg, hooks=[Checkpoints([2], lambda e, m: STOP)], **NO_EVAL)
    assert len(full.history) == 4 and len(stopped.history) == 2 and stopped.steps == 12
    assert all(torch.equal(v, at_two[k]) for k, v in stopped.model.state_dict().items())
    assert stopped.history[-1]["lr"] == full.history[1]["lr"] != full.history[-1]["lr"]
    untrained = train("mlp", mnist_small, cfg, hooks=[Checkpoints([0], lambda e, m: STOP)], **NO_EVAL)
    assert untrained.history == [] and untrained.steps == 0


def test_the_keywords_from_before_hooks_train_the_same_model(mnist_small):
    cfg = TrainConfig(epochs=1, batch_size=500)
    kept = np.arange(0, len(mnist_small), 2)
    weights = np.linspace(0.5, 1.5, len(kept))
    seen_old, seen_new = [], []
    old = train("mlp", mnist_small, cfg, indices=kept, weights=weights, **NO_EVAL,
                observers=[lambda i, logits, y: seen_old.append(i.clone())])
    new = train("mlp", mnist_small, cfg, indices=kept, **NO_EVAL,
                hooks=[SampleWeights(weights), Observe(lambda i, logits, y: seen_new.append(i.clone()))])
    plain = train("mlp", mnist_small, cfg, indices=kept, **NO_EVAL)
    same = [torch.equal(a, b) for a, b in zip(old.model.parameters(), new.model.parameters())]
    assert all(same) and len(same) > 0 and all(torch.equal(a, b) for a, b in zip(seen_old, seen_new))
    assert not all(torch.equal(a, b) for a, b in zip(plain.model.parameters(), new.model.parameters()))
    with pytest.raises(TypeError, match="'observer'"):
        train("mlp", mnist_small, cfg, observer=[])  # a misspelt keyword is an error, not a silent no-op
    with pytest.raises(ConfigError, match="2 hooks plan the epochs"):
        Hooks([PlanEpochs(lambda e: None), PlanEpochs(lambda e: None)])
    with pytest.raises(ConfigError, match="one value per kept index"):
        train("mlp", mnist_small, cfg, indices=kept, hooks=[SampleWeights(weights[1:])])


def test_a_cancel_stops_training_at_the_next_batch(mnist_small):
    token, batches = CancelToken(), []

    class CancelAfterThree(TrainHook):
        def observe(self, idx, logits, y):
            batches.append(len(y))
            if len(batches) == 3:
                token.cancel("enough")

    with pytest.raises(Cancelled, match="enough"):
        train("mlp", mnist_small, TrainConfig(epochs=2, batch_size=500), hooks=[CancelAfterThree()], cancel=token)
    assert batches == [500, 500, 500]
