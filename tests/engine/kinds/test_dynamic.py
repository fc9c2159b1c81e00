"""InfoBatch dynamic pruning: the per-epoch rule exactly, the unbiased rescaled gradient, and a real MNIST run."""
import copy

import numpy as np
import pytest
import torch

import engine
from engine.analysis import savings
from engine.architectures import build_model
from engine.config import TrainConfig, load_config
from engine.data.dataset import load_dataset
from engine.runner.tasks import TopK
from engine.selection.infobatch import InfoBatch
from engine.train_hooks import TrainHook
from engine.trainer import to_model_layout, train


@pytest.fixture(scope="module")
def mnist_losses(shared_data):
    """Real per-sample losses: a partly trained mlp's cross-entropy on 1000 MNIST digits (float32, as InfoBatch keeps
    its scores)."""
    ds = load_dataset("mnist", shared_data, "cpu", 1000, 100)
    model = train("mlp", ds, TrainConfig(steps=6, batch_size=64), seed=0).model.eval()
    with torch.no_grad():
        logits = model(ds.normalize(ds.x_train))
    return torch.nn.functional.cross_entropy(logits, ds.y_train, reduction="none")


def reference_keep(ratio: float) -> float:
    """NUS-HPC-AI-Lab/InfoBatch `infobatch/infobatch.py`: keep_ratio = min(1, max(0.1, 1 − prune_ratio))."""
    return min(1.0, max(0.1, 1.0 - ratio))


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.95])
def test_each_epoch_keeps_exactly_int_keep_times_the_well_learned(mnist_losses, ratio):
    """The reference's rule on real losses, written from its description: the below-mean ("well learned") samples,
    exactly int(keep · |well|) of them kept, chosen uniformly without replacement, each weighted 1/keep; every
    other sample kept at weight 1; r = 0.95 clamped to keep 0.1. The chosen subset equals the one the same seeded
    stream gives (a randperm of the well-learned, in index order), and over many draws each well-learned sample is
    kept with probability int(keep·|well|)/|well| (no favourites: not the first k, not by score)."""
    n, losses = len(mnist_losses), mnist_losses
    pruner = InfoBatch(n, epochs=8, ratio=ratio, delta=0.875, seed=5)
    kept, weights = pruner.plan_epoch(1)  # all scores equal at the start: nothing is below the mean
    assert len(kept) == n and (weights is None or bool((weights == 1).all()))
    pruner.scores = losses.clone()
    kept, weights = pruner.plan_epoch(2)
    keep = reference_keep(ratio)
    well = np.flatnonzero((losses < losses.mean()).numpy())
    count = int(keep * len(well))
    stream = torch.Generator().manual_seed(5)
    torch.randperm(0, generator=stream)  # epoch 1's draw among no well-learned samples
    chosen = well[torch.randperm(len(well), generator=stream)[:count].numpy()]
    expected = np.sort(np.concatenate([np.setdiff1d(np.arange(n), well), chosen]))
    np.testing.assert_array_equal(kept.numpy(), expected)
    assert len(kept) == n - len(well) + count and pruner.used == [n, len(kept)]
    np.testing.assert_array_equal(weights.numpy(), np.where(np.isin(expected, well), np.float32(1 / keep), 1.0))
    assert 0.3 * n < len(well) < 0.9 * n

    frequency = np.zeros(n)
    draws = 2000
    for _ in range(draws):
        frequency[pruner.draw()[0].numpy()] += 1
    p = count / len(well)
    z = (frequency[well] / draws - p) / np.sqrt(p * (1 - p) / draws)
    assert np.abs(z).max() < 5 and (frequency[np.setdiff1d(np.arange(n), well)] == draws).all()


# Pruning epochs of the reference, counted by running NUS-HPC-AI-Lab/InfoBatch infobatch/infobatch.py (HEAD 8bbb012)
# under a DataLoader whose batch sampler iterates its sampler once per epoch: `prune()` runs at construction
# (iteration 0, before any epoch) and then at the reset that starts epoch e while e <= num_epochs * delta; epoch 1's
# prunes nothing, its scores all equal (3).
REFERENCE_PRUNING_EPOCHS = {(200, 0.875): 175, (8, 0.875): 7, (10, 0.875): 8, (4, 0.5): 2, (3, 1.0): 3}


@pytest.mark.parametrize("epochs, delta", list(REFERENCE_PRUNING_EPOCHS))
def test_pruning_runs_for_the_epochs_the_reference_prunes(epochs, delta):
    pruner = InfoBatch(100, epochs=epochs, ratio=0.5, delta=delta)
    plan = [pruner.prunes(e) for e in range(1, epochs + 1)]
    count = REFERENCE_PRUNING_EPOCHS[epochs, delta]
    assert plan == [True] * count + [False] * (epochs - count)


def test_in_the_trainer_each_epoch_trains_on_the_rule_applied_to_the_latest_losses(shared_data):
    """The whole loop against an independent recount: every trained batch's logits recorded, each sample's latest
    (label-smoothed, as the trainer's loss is) cross-entropy recomputed in float64, and each epoch's plan the rule
    on those; the epochs after δ·E train on everything at weight 1; what the trainer trains on is the plan."""
    ds = load_dataset("mnist", shared_data, "cpu", 600, 200)
    n, epochs, ratio, smoothing = len(ds), 4, 0.5, 0.1
    pruner = InfoBatch(n, epochs=epochs, ratio=ratio, delta=0.75, seed=0, label_smoothing=smoothing)
    witness = Witness(pruner, n, "loss", smoothing=smoothing)
    result = train("mlp", ds, TrainConfig(epochs=epochs, batch_size=64, label_smoothing=smoothing),
                   hooks=[witness])
    stream = torch.Generator().manual_seed(0)
    for e, (kept, weights) in enumerate(witness.plans, start=1):
        if e > 3:  # δ·E = 3: the last epoch trains on everything
            assert len(kept) == n and weights is None
            continue
        scores = witness.expected[e - 1].float()
        well = np.flatnonzero((scores < scores.mean()).numpy())
        count = int(0.5 * len(well))
        chosen = well[torch.randperm(len(well), generator=stream)[:count].numpy()]
        expected = np.sort(np.concatenate([np.setdiff1d(np.arange(n), well), chosen]))
        np.testing.assert_array_equal(kept.numpy(), expected, err_msg=f"epoch {e}")
        if e > 1:
            assert 0.1 * n < n - len(kept) < 0.5 * n  # it prunes: half the below-mean part
            np.testing.assert_array_equal(weights.numpy(), np.where(np.isin(expected, well), np.float32(2.0), 1.0))
    assert pruner.used[0] == pruner.used[3] == n and all(u < n for u in pruner.used[1:3])
    assert result.samples == witness.trained == sum(pruner.used)
    assert result.steps == sum(-(-u // 64) for u in pruner.used)
    np.testing.assert_allclose(pruner.scores.numpy(), witness.latest.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_rescaling_keeps_the_expected_gradient_as_the_rule_says(shared_data):
    """Over draws, Σ_kept w_i g_i / N has the mean the rule gives: each well-learned sample is kept with probability
    c/|W| (c = int(keep·|W|)) at weight 1/keep, every other at weight 1; that is the full-data gradient up to the
    rounding of c (here |W| is odd and the bias is 1/|W| of the well-learned part), and without 1/keep it is not."""
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
    well = (pruner.scores < pruner.scores.mean()).double()
    count = int(0.5 * well.sum().item())
    rule = well * count / well.sum() / 0.5 + (1 - well)  # E[w_i 1(i kept)]
    expected = (rule @ g) / len(y)
    draws = 6000
    mask = torch.zeros(draws, len(y), dtype=torch.float64)
    for d in range(draws):
        kept, weights = pruner.draw()
        mask[d, kept] = weights.double()
    estimate = (mask @ g).mean(0) / len(y)  # the mean over draws of sum_kept w_i g_i / N
    unscaled = ((mask > 0).double() @ g).mean(0) / len(y)
    se = ((mask @ g) / len(y)).std(0) / np.sqrt(draws)  # per coordinate
    z = (estimate - expected) / se.clamp_min(1e-12)
    assert z.abs().max() < 5  # within noise of what the rule gives, in every coordinate
    assert (torch.linalg.vector_norm(unscaled - full) / torch.linalg.vector_norm(full)) > 0.1  # without 1/keep
    assert torch.linalg.vector_norm(expected - full) / torch.linalg.vector_norm(full) < 0.02
    assert torch.linalg.vector_norm(estimate - full) / torch.linalg.vector_norm(full) < 0.03


def test_ranking_score_by_any_forward_scorer(shared_data):
    """`dynamic.score`: a batch scorer of the logits keeps each sample's latest value (with its `[scoring.NAME]`
    options), a training scorer its observer's running statistic; each epoch's plan is the rule applied to that,
    checked against an independent computation from the logits the trainer showed (entropy; least confidence on
    probabilities, its option; AUM = -mean(assigned - largest other logit))."""
    ds = load_dataset("mnist", shared_data, "cpu", 400, 100)
    n, epochs, r = len(ds), 3, 0.5
    for score, options in (("entropy", None), ("least_confidence", {"form": "probability"}), ("aum", None)):
        pruner = InfoBatch(n, epochs=epochs, ratio=r, delta=1.0, score=score, seed=3, options=options)
        witness = Witness(pruner, n, score)
        train("mlp", ds, TrainConfig(epochs=epochs, batch_size=64), hooks=[witness])
        plans = witness.plans
        stream = torch.Generator().manual_seed(3)
        for e in range(epochs):  # epoch 1 is full (all scores equal); from epoch 2, the rule on the score
            s = witness.expected[e].float()
            well = np.flatnonzero((s < s.mean()).numpy())
            chosen = well[torch.randperm(len(well), generator=stream)[:int(0.5 * len(well))].numpy()]
            kept = np.sort(np.concatenate([np.setdiff1d(np.arange(n), well), chosen]))
            np.testing.assert_array_equal(plans[e][0].numpy(), kept, err_msg=f"{score}, epoch {e + 1}")
            assert e == 0 or 0.05 * n < n - len(kept) < 0.5 * n  # it prunes: half the below-mean part
        assert len(plans[0][0]) == n
        if score != "aum":  # a batch scorer's latest values live in the pruner (float32)
            np.testing.assert_allclose(pruner.scores.numpy(), witness.latest.numpy(), rtol=1e-5, atol=1e-6)


class Witness(TrainHook):
    """InfoBatch's plan and observation as the trainer calls them, with an independent float64 recount of the
    score from the same logits (the latest loss, label-smoothed as the trainer's; entropy; 1 − max p; or AUM),
    kept at each epoch's start, and a count of the samples trained on."""

    def __init__(self, pruner: InfoBatch, n: int, score: str, smoothing: float = 0.0):
        self.pruner, self.score, self.smoothing = pruner, score, smoothing
        self.latest = torch.full((n,), 3.0, dtype=torch.float64)
        self.margin_sum, self.seen = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
        self.expected, self.plans = [], []
        self.trained = 0

    def plan_epoch(self, epoch):
        self.expected.append(-self.margin_sum / self.seen.clamp(min=1) if self.score == "aum"
                             else self.latest.clone())
        self.plans.append(self.pruner.plan_epoch(epoch))
        return self.plans[-1]

    def observe(self, idx, logits, y):
        self.pruner.observe(idx, logits, y)
        self.trained += len(y)
        z = logits.double()
        logp = z.log_softmax(1)
        rows = torch.arange(len(y))
        if self.score == "loss":  # (1 − ε)·(−log p_y) + ε·mean_c(−log p_c)
            self.latest[idx] = -(1 - self.smoothing) * logp[rows, y] - self.smoothing * logp.mean(1)
        elif self.score == "entropy":
            self.latest[idx] = -(logp.exp() * logp).sum(1)
        elif self.score == "least_confidence":
            self.latest[idx] = 1 - logp.exp().max(1).values
        others = z.clone()
        others[rows, y] = -torch.inf
        self.margin_sum[idx] += z[rows, y] - others.max(1).values
        self.seen[idx] += 1


class TopKWitness(TrainHook):
    """Online top-k as the trainer calls it, beside an independent float64 recomputation of each drawn batch's
    scores with a copy of the model at that step (eval mode): the loss, or ‖∇θ ℓ‖ by a per-sample autograd loop."""

    def __init__(self, topk: TopK, dataset, method: str):
        self.topk, self.dataset, self.method = topk, dataset, method
        self.kept, self.ties = [], 0

    def select(self, idx, x, y):
        model = copy.deepcopy(self.topk.model).double().eval()
        inputs = to_model_layout(self.dataset.normalize(x, torch.float64))
        if self.method == "loss":
            with torch.no_grad():
                scores = torch.nn.functional.cross_entropy(model(inputs), y, reduction="none").numpy()
        else:
            params = list(model.parameters())
            scores = np.array([torch.sqrt(sum(g.square().sum() for g in torch.autograd.grad(
                torch.nn.functional.cross_entropy(model(inputs[i:i + 1]), y[i:i + 1]), params))).item()
                for i in range(len(y))])
        chosen = self.topk.select(idx, x, y).numpy()
        order = np.argsort(-scores, kind="stable")
        k = len(chosen)
        if set(chosen) != set(order[:k]):  # only an exact tie at the cut may swap samples
            assert np.isclose(scores[order[k - 1]], scores[order[k]], rtol=1e-6), (scores[order[k - 1]],
                                                                                  scores[order[k]])
            self.ties += 1
        self.kept.append(k)
        return torch.from_numpy(chosen)


@pytest.mark.parametrize("method", ["loss", "grad_norm"])
def test_online_topk_backpropagates_the_k_highest_of_each_drawn_batch(shared_data, method):
    """Each drawn batch of B = 64 scored by the model being trained (eval mode, the batch as drawn), its k = 20
    highest backpropagated (the last, partial batch of 24: round(20·24/64) = 8), the same positions as the float64
    recomputation picks; the trainer trains on exactly those."""
    ds = load_dataset("mnist", shared_data, "cpu", 600, 100)
    model = build_model("mlp", ds.input_shape, ds.num_classes, seed=0)
    witness = TopKWitness(TopK(model, ds, method, 64, 20, seed=0), ds, method)
    result = train(model, ds, TrainConfig(epochs=1, batch_size=64), hooks=[witness], evaluate_every_epoch=False,
                   evaluate_at_end=False)
    assert witness.kept == [20] * 9 + [8] and witness.ties == 0
    assert result.samples == sum(witness.kept) == witness.topk.kept and witness.topk.drawn == 600


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
