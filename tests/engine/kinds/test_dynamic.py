"""InfoBatch dynamic pruning: the per-epoch rule exactly, the unbiased rescaled gradient, and a real MNIST run."""
import numpy as np
import pytest
import torch

import engine
from engine.analysis import savings
from engine.architectures import build_model
from engine.config import TrainConfig, load_config
from engine.data.dataset import load_dataset
from engine.selection.infobatch import InfoBatch
from engine.train_hooks import Observe, TrainHook
from engine.trainer import train


def test_each_epoch_uses_exactly_the_samples_the_rule_keeps(shared_data):
    n, r = 1000, 0.3
    scores = torch.from_numpy(np.random.default_rng(0).exponential(size=n))
    pruner = InfoBatch(n, epochs=8, ratio=r, delta=0.75, seed=5)
    kept, weights = pruner(1)  # all scores equal at the start: nothing is below the mean
    assert len(kept) == n and bool((weights == 1).all())
    pruner.scores = scores.float().clone()
    kept, weights = pruner(2)
    well = scores.numpy() < scores.numpy().mean()
    draws = torch.rand(2 * n, generator=torch.Generator().manual_seed(5)).numpy()[n:]  # the stream again, epoch 2
    expected = np.flatnonzero(~(well & (draws < r)))
    np.testing.assert_array_equal(kept.numpy(), expected)
    assert len(kept) == n - int((well & (draws < r)).sum())
    np.testing.assert_array_equal(weights.numpy(), np.where(well[expected], np.float32(1 / (1 - r)), 1.0))
    assert [pruner.prunes(e) for e in range(1, 9)] == [True] * 6 + [False] * 2  # the last (1 - δ) = 2 of 8
    assert len(pruner(7)[0]) == n and pruner(7)[1] is None

    ds = load_dataset("mnist", shared_data, "cpu", 600, 200)  # in the trainer: what it trains on is the plan
    pruner = InfoBatch(len(ds), epochs=4, ratio=0.5, delta=0.75, seed=0)
    seen = []
    result = train("mlp", ds, TrainConfig(epochs=4, batch_size=64),
                   hooks=[pruner, Observe(lambda i, logits, y: seen.append(len(y)))])  # InfoBatch plans and observes
    assert pruner.used[0] == pruner.used[3] == 600 and all(u < 600 for u in pruner.used[1:3])
    assert result.samples == sum(seen) == sum(pruner.used)
    assert result.steps == sum(-(-u // 64) for u in pruner.used)


@pytest.mark.slow
def test_rescaling_keeps_the_expected_gradient_unbiased(shared_data):
    ds = load_dataset("mnist", shared_data, "cpu", 200, 10)
    model = build_model("mlp", ds.input_shape, ds.num_classes, seed=0).double()
    x, y = ds.normalize(ds.x_train).double(), ds.y_train
    params = list(model.parameters())
    grads = []
    for i in range(len(y)):  # per-sample gradients of the fixed model, one at a time
        loss = torch.nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
    g = torch.stack(grads)
    with torch.no_grad():
        losses = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    full = g.mean(0)
    pruner = InfoBatch(len(y), epochs=10, ratio=0.5, seed=1)
    pruner.scores = losses.float()
    draws = 6000
    mask = torch.zeros(draws, len(y), dtype=torch.float64)
    for d in range(draws):
        kept, weights = pruner.draw()
        mask[d, kept] = weights.double()
    estimate = (mask @ g).mean(0) / len(y)  # the mean over draws of sum_kept w_i g_i / N
    unscaled = ((mask > 0).double() @ g).mean(0) / len(y)
    se = ((mask @ g) / len(y)).std(0) / np.sqrt(draws)  # per coordinate
    z = (estimate - full) / se.clamp_min(1e-12)
    assert z.abs().max() < 5  # within noise: no bias in any coordinate
    assert (torch.linalg.vector_norm(unscaled - full) / torch.linalg.vector_norm(full)) > 0.1  # without 1/(1-r)
    assert torch.linalg.vector_norm(estimate - full) / torch.linalg.vector_norm(full) < 0.02


def test_ranking_score_by_any_forward_scorer(shared_data):
    """`dynamic.score`: a batch scorer of the logits keeps each sample's latest value, a training scorer its
    observer's running statistic; each epoch's plan is the rule applied to that, checked against an independent
    computation from the logits the trainer showed (entropy; AUM = -mean(assigned - largest other logit))."""
    ds = load_dataset("mnist", shared_data, "cpu", 400, 100)
    n, epochs, r = len(ds), 3, 0.5
    for score in ("entropy", "aum"):
        pruner = InfoBatch(n, epochs=epochs, ratio=r, delta=1.0, score=score, seed=3)
        witness = Witness(pruner, n, score)
        train("mlp", ds, TrainConfig(epochs=epochs, batch_size=64), hooks=[witness])
        plans = witness.plans
        draws = torch.rand(epochs * n, generator=torch.Generator().manual_seed(3)).numpy().reshape(epochs, n)
        for e in range(1, epochs):  # epoch 1 is full (all scores equal); from epoch 2, the rule on the score
            s = witness.expected[e].numpy()
            well = s < s.mean()
            kept = np.flatnonzero(~(well & (draws[e] < r)))
            np.testing.assert_array_equal(plans[e][0].numpy(), kept, err_msg=f"{score}, epoch {e + 1}")
            assert 0.05 * n < n - len(kept) < 0.5 * n  # it prunes: a share of the below-mean part
        assert len(plans[0][0]) == n
        if score == "entropy":  # a batch scorer's latest values live in the pruner (float32)
            np.testing.assert_allclose(pruner.scores.numpy(), witness.latest.numpy(), rtol=1e-5, atol=1e-6)


class Witness(TrainHook):
    """InfoBatch's plan and observation as the trainer calls them, with an independent float64 recount of the
    score (entropy of the latest logits, or AUM) from the same logits, kept at each epoch's start."""

    def __init__(self, pruner: InfoBatch, n: int, score: str):
        self.pruner, self.score = pruner, score
        self.latest = torch.zeros(n, dtype=torch.float64)
        self.margin_sum, self.seen = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
        self.expected, self.plans = [], []

    def plan_epoch(self, epoch):
        self.expected.append(self.latest.clone() if self.score == "entropy"
                             else -self.margin_sum / self.seen.clamp(min=1))
        self.plans.append(self.pruner.plan_epoch(epoch))
        return self.plans[-1]

    def observe(self, idx, logits, y):
        self.pruner.observe(idx, logits, y)
        z = logits.double()
        p = z.softmax(1)
        self.latest[idx] = -(p * p.log()).sum(1)
        others = z.clone()
        others[torch.arange(len(y)), y] = -torch.inf
        self.margin_sum[idx] += z[torch.arange(len(y)), y] - others.max(1).values
        self.seen[idx] += 1


@pytest.mark.parametrize("name, ok", [("loss", True), ("entropy", True), ("forgetting", True), ("aum", True),
                                      ("grad_norm", False), ("moderate", False), ("random", False),
                                      ("nope", False)])
def test_dynamic_score_is_validated_against_the_registry(name, ok):
    if ok:
        assert load_config("quick", {"kind": "dynamic", "dynamic.score": name}).dynamic.score == name
    else:
        with pytest.raises(engine.errors.ConfigError, match="dynamic.score"):
            load_config("quick", {"kind": "dynamic", "dynamic.score": name})


def test_savings_against_the_full_row():
    rows = [{"method": "full", "mean_accuracy": 0.9, "forward": 1000.0, "backward": 1000.0, "wall_seconds": 10.0},
            {"method": "infobatch", "mean_accuracy": 0.895, "forward": 700.0, "backward": 700.0, "wall_seconds": 8.0}]
    out = savings(rows)[1]
    assert out["forward_saved"] == pytest.approx(0.3, abs=1e-12) and out["wall_saved"] == pytest.approx(0.2)
    assert out["accuracy_vs_full"] == pytest.approx(-0.005, abs=1e-12)


def test_dynamic_run_on_mnist_saves_a_quarter_of_passes_within_a_point(in_tmp, shared_data):
    cfg = load_config("quick", {
        "kind": "dynamic", "name": "dynamic", "data.dataset": "mnist", "data.data_dir": str(shared_data),
        "data.train_size": 4000, "data.test_size": 2000, "model": "mlp", "train.epochs": 8, "train.batch_size": 128,
        "train.lr": 0.1, "dynamic.seeds": [0]})
    result = engine.run(cfg)
    assert result.status == "FINISHED" and len(result.trials) == 2
    rows = {r["method"]: r for r in result.summary}
    info, full = rows["infobatch"], rows["full"]
    assert full["forward"] == full["backward"] == 8 * 4000
    assert info["forward_saved"] >= 0.25 and info["backward_saved"] == info["forward_saved"]
    assert abs(info["accuracy_vs_full"]) <= 0.01, (info["mean_accuracy"], full["mean_accuracy"])
    print(f"infobatch saved {info['forward_saved']:.1%} of passes, {info['wall_saved']:.1%} of wall time; accuracy "
          f"{info['mean_accuracy']:.2%} vs full {full['mean_accuracy']:.2%}")
