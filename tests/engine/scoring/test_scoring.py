"""Scoring: exact per-sample norms against a slow loop, the scorers' definitions, surrogates, cache and CLI.

Real data only (small MNIST subsets, a handful of CIFAR-10 images). Exactness is
checked in float64 layer by layer at rtol 1e-10 (fast and slow agree to ~1e-15), so a
form off by a relative 1e-6 in any one layer fails.
"""
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import engine
import engine.scoring.gradnorm.conv as conv_module
import engine.scoring.gradnorm.linear as linear_module
from engine.architectures import build_model
from engine.cli import main
from engine.config import TrainConfig
from engine.errors import ConfigError, UnknownNameError
from engine.scoring import surrogate as surrogate_module
from engine.scoring.batch import score_model
from engine.scoring.forgetting import ForgettingCounter
from engine.scoring.gradnorm import PerSampleGradNorms
from engine.scoring.registry import SCORERS, register_scorer
from engine.scoring.surrogate import compute_scores, surrogate_seed
from engine.store.cache import Cache
from engine.store.events import BatchProgress, StageStarted
from engine.trainer import to_model_layout, train


def trainable_layers(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Layer name -> its own trainable parameters (a model's own Parameter counts under the model's class name)."""
    layers = {}
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if own:
            layers[name or type(model).__name__] = own
    return layers


def slow_norms(model: nn.Module, dataset, n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The definition, one sample at a time: each layer's ‖∇θ_layer L‖², and ‖∂L/∂x‖."""
    model.eval()
    layers = trainable_layers(model)
    params = [p for ps in layers.values() for p in ps]
    x = to_model_layout(dataset.normalize(dataset.x_train[:n], torch.float64))
    squares, input_norm = {name: [] for name in layers}, []
    for i in range(n):
        xi = x[i:i + 1].clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(xi), dataset.y_train[i:i + 1])
        *grads, g_input = torch.autograd.grad(loss, params + [xi])
        grads = iter(grads)
        for name, ps in layers.items():
            squares[name].append(sum(next(grads).square().sum() for _ in ps).item())
        input_norm.append(g_input.norm().item())
    return {name: np.array(v) for name, v in squares.items()}, np.array(input_norm)


def fast_layer_squares(model: nn.Module, dataset, n: int, batch_size: int, **kwargs) -> dict[str, np.ndarray]:
    """Each layer's per-sample squares from the one-pass hooks (PerSampleGradNorms' per_layer record)."""
    model.eval()
    x = to_model_layout(dataset.normalize(dataset.x_train[:n], torch.float64))
    parts: dict[str, list[np.ndarray]] = {}
    with PerSampleGradNorms(model, per_layer=True, **kwargs) as norms:
        for start in range(0, n, batch_size):
            xb, yb = x[start:start + batch_size], dataset.y_train[start:start + batch_size]
            norms.begin(len(yb), torch.float64, x.device)
            loss = nn.functional.cross_entropy(model(xb), yb, reduction="sum")
            torch.autograd.grad(loss, norms.roots)
            total = norms.finish()
            torch.testing.assert_close(sum(norms.layer_sq.values()), total, rtol=1e-13, atol=0)
            for name, sq in norms.layer_sq.items():
                parts.setdefault(name, []).append(sq.cpu().numpy())
    return {name: np.concatenate(v) for name, v in parts.items()}


EXACT = 1e-10  # float64: fast and slow agree to ~1e-15; a layer off by a relative 1e-6 must fail


def assert_fast_matches_slow(model: nn.Module, dataset, n: int, batch_size: int = 7, alone: bool = True,
                             **kwargs) -> None:
    """Every layer's per-sample square, then the totals (with and without ‖∂L/∂x‖), at rtol 1e-10."""
    model.to(dataset.device)
    slow_sq, slow_input = slow_norms(model, dataset, n)
    fast_sq = fast_layer_squares(model, dataset, n, batch_size, **kwargs)
    assert fast_sq.keys() == slow_sq.keys()
    for name, sq in slow_sq.items():
        assert sq.shape == (n,) and sq.max() > 0, name
        np.testing.assert_allclose(fast_sq[name], sq, rtol=EXACT, atol=0, err_msg=f"layer {name!r}")
    slow_grad = np.sqrt(sum(slow_sq.values()))
    fast = score_model(model, dataset, ["grad_norm", "input_grad_norm"], batch_size=batch_size,
                       indices=np.arange(n), **kwargs)
    assert fast.scores["grad_norm"].dtype == np.float64
    np.testing.assert_allclose(fast.scores["grad_norm"], slow_grad, rtol=EXACT, atol=0)
    np.testing.assert_allclose(fast.scores["input_grad_norm"], slow_input, rtol=EXACT, atol=0)
    if alone:  # no input gradient asked: the backward ends at the first layers
        only = score_model(model, dataset, ["grad_norm"], batch_size=batch_size, indices=np.arange(n), **kwargs)
        np.testing.assert_allclose(only.scores["grad_norm"], slow_grad, rtol=EXACT, atol=0)


def force_form(monkeypatch, form: str | None) -> None:
    """Every Linear/Conv layer in the Gram ("ghost") or the materialised ("patches") form (None: as they choose)."""
    if form is None:
        return
    monkeypatch.setattr(linear_module, "ghost_is_cheaper", lambda *a: form == "ghost")
    monkeypatch.setattr(conv_module, "ghost_is_cheaper", lambda *a: form == "ghost")


def chunk_steps(monkeypatch) -> list[int]:
    """Records every chunk size the Linear/Conv forms choose."""
    steps, real = [], linear_module.chunk_size

    def spy(*args):
        steps.append(real(*args))
        return steps[-1]

    monkeypatch.setattr(linear_module, "chunk_size", spy)
    monkeypatch.setattr(conv_module, "chunk_size", spy)
    return steps


# ---------------------------------------------------------------- exactness
# Workspace for one layer's temporaries: 1 GB holds every layer here whole; 1e-4 MB cuts them into a few samples each.
CHUNKED = {"unchunked": {"workspace_mb": 1e3}, "chunked": {"workspace_mb": 1e-4}}


@pytest.mark.parametrize("name, form, chunks", [("mlp", None, "unchunked")] + [
    ("cnn", form, chunks) for form in ("ghost", "patches") for chunks in CHUNKED])
def test_grad_norms_match_per_sample_loop(mnist, monkeypatch, name, form, chunks):
    """64 MNIST samples, every layer separately: the mlp's Linear layers (2-D: ‖g‖²‖a‖², no form to choose),
    the cnn's Conv2d layers in both forms, chunked and not."""
    model = train(name, mnist, TrainConfig(steps=6, batch_size=50), seed=0).model.double()  # partly trained
    force_form(monkeypatch, form)
    steps = chunk_steps(monkeypatch)
    assert_fast_matches_slow(model, mnist, 64, batch_size=16, **CHUNKED[chunks])
    if name == "cnn":
        assert (min(steps) < 16) == (chunks == "chunked")  # the layers really were cut into chunks, or not


def test_grad_norms_match_on_resnet18_with_batchnorm_in_eval_mode(cifar, monkeypatch):
    """16 CIFAR images, ResNet18 (Conv2d, BatchNorm2d with its running statistics and eps, Linear), layer by layer.

    The forms as the layers choose them, with the default workspace (some layers chunked):
    the forced forms and chunking are covered on the cnn and `Assorted` at a fraction of the cost.
    """
    model = build_model("resnet18", cifar.input_shape, cifar.num_classes, seed=0).double().to(cifar.device).train()
    gen = torch.Generator().manual_seed(0)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.momentum = None  # running statistics = those of the next batch: eval-mode BN is not the identity
        with torch.no_grad():  # γ, β away from 1 and 0, as after training
            bn.weight.copy_(1 + 0.3 * torch.randn(bn.weight.shape, generator=gen, dtype=torch.float64))
            bn.bias.copy_(0.1 * torch.randn(bn.bias.shape, generator=gen, dtype=torch.float64))
    with torch.no_grad():
        model(cifar.normalize(cifar.x_train[4:12], torch.float64))
    bn = model.features[1]
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    steps = chunk_steps(monkeypatch)
    assert_fast_matches_slow(model, cifar, 16, batch_size=8, alone=False)
    assert min(steps) < 8 and max(steps) == 8  # some layers chunked, some whole


class Assorted(nn.Module):
    """Every other path: reflect/'same' and circular padding, grouped and dilated convs, Conv1d,
    GroupNorm and LayerNorm (generic), a Linear on 3-D input, a partly frozen layer, an own Parameter."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding="same", padding_mode="reflect")
        self.gn = nn.GroupNorm(2, 8)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, groups=4, dilation=2, padding=1, padding_mode="circular")
        self.c1d = nn.Conv1d(8, 6, 3, padding=1)
        self.ln = nn.LayerNorm(6)
        self.tokens = nn.Linear(6, 5)
        self.partly_frozen = nn.Linear(5, 5)
        self.partly_frozen.weight.requires_grad_(False)
        self.scale = nn.Parameter(torch.full((1,), 1.5))
        self.head = nn.Linear(5, 10)

    def forward(self, x):
        h = torch.relu(self.gn(self.c1(x)))
        h = self.c2(h).flatten(2)  # (N, 8, L)
        h = self.tokens(self.ln(self.c1d(h).transpose(1, 2)))  # (N, L, 5)
        return self.head(self.partly_frozen(h.mean(1)) * self.scale)


@pytest.mark.parametrize("chunks", CHUNKED)
@pytest.mark.parametrize("form", ["ghost", "patches"])
def test_every_layer_path_is_exact_in_both_forms_and_in_chunks(cifar, monkeypatch, form, chunks):
    """10 CIFAR images; GroupNorm, LayerNorm and the model's own Parameter take the generic fallback."""
    force_form(monkeypatch, form)
    torch.manual_seed(0)
    model = Assorted().double()
    steps = chunk_steps(monkeypatch)
    assert_fast_matches_slow(model, cifar, 10, batch_size=5, **CHUNKED[chunks])
    assert (min(steps) < 5) == (chunks == "chunked")
    generic = {name for name, module in model.named_modules() if module is model or (len(name) and
               not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)))}
    assert generic == {"", "gn", "ln"}  # the layers no closed form handles: the torch.func fallback


def test_inplace_op_after_the_first_layer(mnist):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    assert_fast_matches_slow(model.double(), mnist, 6, batch_size=3)


def test_reused_module_tied_weights_and_batch_statistics_are_refused(mnist):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.flat, self.a, self.b = nn.Flatten(), nn.Linear(784, 784), nn.Linear(784, 10)

        def forward(self, x):
            return self.b(self.a(self.a(self.flat(x))))

    with pytest.raises(ConfigError, match="called more than once"):
        score_model(Twice(), mnist, ["grad_norm"], indices=np.arange(4))
    tied = Twice()
    tied.b.weight = nn.Parameter(torch.zeros(10, 784))
    tied.a.bias = tied.b.bias = nn.Parameter(torch.zeros(784))
    with pytest.raises(ConfigError, match="share a parameter"):
        score_model(tied, mnist, ["grad_norm"], indices=np.arange(4))
    batch_stats = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False), nn.Flatten(),
                                nn.Linear(2 * 26 * 26, 10))
    with pytest.raises(ConfigError, match="track_running_stats"):
        score_model(batch_stats, mnist, ["grad_norm"], indices=np.arange(4))


def test_float32_scores_match_float64_closely(mnist):
    """Float32 round-off only: TF32 (on a GPU) would be ~1e-3 off, far outside rtol 1e-4.

    Not input_grad_norm: MNIST's flat background makes max-pool windows tie, and the
    float32 and float64 kernels route a tie's gradient to different pixels. Both are
    valid subgradients (each matches its own per-sample loop), with norms up to 1.3 %
    apart; the parameter gradient does not depend on the choice.
    """
    model = train("cnn", mnist, TrainConfig(steps=6, batch_size=50), seed=0).model
    single = score_model(model, mnist, ["grad_norm", "loss"], indices=np.arange(64))
    double = score_model(model.double(), mnist, ["grad_norm", "loss"], indices=np.arange(64))
    for name in ("grad_norm", "loss"):
        assert single.scores[name].dtype == np.float32
        np.testing.assert_allclose(single.scores[name], double.scores[name], rtol=1e-4, atol=1e-6)


def test_the_pass_runs_in_full_float32_and_restores_the_settings(mnist):
    """cuDNN may round float32 convolutions to TF32 by default: scoring turns that off, training keeps its choice."""
    seen = []

    def record(model, x, y, logits):
        seen.append((torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision))
        return logits[:, 0]

    register_scorer("precision_probe", record)
    before = (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    score_model(build_model("mlp", mnist.input_shape, 10, seed=0), mnist, ["precision_probe", "grad_norm"],
                indices=np.arange(20), batch_size=10)
    assert seen == [("ieee", "ieee")] * 2
    assert (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == before
    SCORERS.pop("precision_probe")


# ---------------------------------------------------------------- the scorers' definitions
def test_loss_el2n_predictions_and_embeddings_follow_their_formulas(mnist):
    model = train("cnn", mnist, TrainConfig(steps=5, batch_size=50), seed=0).model
    result = score_model(model, mnist, ["loss", "el2n"], batch_size=64, embeddings=True)
    model.eval()
    with torch.no_grad():
        x = to_model_layout(mnist.normalize(mnist.x_train))
        logits = model(x)
        onehot = nn.functional.one_hot(mnist.y_train, 10).float()
        el2n = (torch.softmax(logits, 1) - onehot).norm(dim=1)
        loss = nn.functional.cross_entropy(logits, mnist.y_train, reduction="none")
        features = model.embed(x)
    np.testing.assert_allclose(result.scores["el2n"], el2n.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.scores["loss"], loss.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.predictions, logits.argmax(1).numpy())
    np.testing.assert_allclose(result.embeddings, features.numpy(), rtol=1e-5, atol=1e-6)


def test_el2n_averages_over_k_surrogates(mnist):
    cfg = TrainConfig(epochs=1, batch_size=100)
    result = compute_scores(mnist, "mlp", ["el2n"], epochs=[1], inits=2, train_cfg=cfg, seed=5)
    singles = [score_model(train("mlp", mnist, cfg, seed=surrogate_seed(5, k)).model, mnist, ["el2n"])
               .scores["el2n"] for k in range(2)]
    assert surrogate_seed(5, 0) == 5 and surrogate_seed(5, 1) not in (5, 6)
    np.testing.assert_allclose(result.get("el2n", 1), (singles[0] + singles[1]) / 2, rtol=1e-5)


def test_random_is_reproducible_per_seed(mnist):
    a = compute_scores(mnist, "cnn", ["random"], epochs=[0, 1], seed=1)
    b = compute_scores(mnist, "cnn", ["random"], epochs=[0, 1], seed=1)
    c = compute_scores(mnist, "cnn", ["random"], epochs=[0, 1], seed=2)
    assert a.surrogates_trained == 0  # needs no model
    np.testing.assert_array_equal(a.get("random", 1), b.get("random", 1))
    assert not np.allclose(a.get("random", 1), c.get("random", 1))
    assert a.get("random").shape == (len(mnist),) and 0 <= a.get("random").min() < a.get("random").max() < 1


def test_forgetting_counts_match_a_recount_of_the_recorded_sequence(mnist):
    counter = ForgettingCounter(len(mnist), mnist.device)
    record = []

    def recorder(idx, logits, y):
        record.append((idx.tolist(), (logits.argmax(1) == y).tolist()))

    train("mlp", mnist, TrainConfig(epochs=4, batch_size=50, lr=0.2), seed=0, observers=[counter, recorder])
    previous, counts, learned = {}, np.zeros(len(mnist)), np.zeros(len(mnist), bool)
    for idx, correct in record:
        for i, c in zip(idx, correct):
            counts[i] += previous.get(i, False) and not c
            previous[i] = c
            learned[i] |= c
    counts[~learned] = counts[learned].max() + 1
    scores = counter.scores()
    np.testing.assert_array_equal(scores, counts)
    assert 0 < learned.mean() < 1 or learned.all()
    assert counts[learned].max() <= 2  # 4 appearances allow at most 2 correct -> incorrect transitions
    assert (scores[learned] > 0).any()  # a real run forgets some samples


def test_custom_scorer_is_usable_by_name(mnist):
    def margin(model, x, y, logits):
        """Top-1 logit minus the true class's logit."""
        return logits.max(1).values - logits.gather(1, y[:, None])[:, 0]

    register_scorer("test_margin", margin)
    try:
        assert SCORERS["test_margin"].description.startswith("Top-1 logit")
        result = compute_scores(mnist, "mlp", ["test_margin", "loss"], epochs=[0], inits=3, seed=0)
        assert result.surrogates_trained == 1  # neither averages over inits: surrogate 0 only
        model = build_model("mlp", mnist.input_shape, mnist.num_classes, seed=surrogate_seed(0, 0)).eval()
        with torch.no_grad():
            logits = model(to_model_layout(mnist.normalize(mnist.x_train)))
        expected = (logits.max(1).values - logits.gather(1, mnist.y_train[:, None])[:, 0]).numpy()
        np.testing.assert_allclose(result.get("test_margin", 0), expected, rtol=1e-5, atol=1e-6)
        assert (expected > 0).any() and (expected == 0).any()  # an untrained model: some right, some wrong
    finally:
        del SCORERS["test_margin"]


# ---------------------------------------------------------------- errors
def test_clear_errors_before_any_training(mnist):
    cfg = TrainConfig(epochs=2)
    with pytest.raises(UnknownNameError, match="unknown scorer 'gradnorm'.*grad_norm"):
        compute_scores(mnist, "cnn", ["gradnorm"], epochs=[1], train_cfg=cfg)
    with pytest.raises(ConfigError, match="score epoch 3 is beyond .* budget of 2"):
        compute_scores(mnist, "cnn", ["loss"], epochs=[1, 3], train_cfg=cfg)
    for k in (0, -1):
        with pytest.raises(ConfigError, match="inits"):
            compute_scores(mnist, "cnn", ["el2n"], epochs=[1], inits=k, train_cfg=cfg)
    with pytest.raises(ConfigError, match="compute_scores"):
        score_model(build_model("mlp", mnist.input_shape, 10), mnist, ["forgetting"])


# ---------------------------------------------------------------- surrogates, events and the cache
def test_second_call_trains_nothing_and_new_scorers_only_rescore(mnist, tmp_path, monkeypatch):
    calls = []
    real_train = surrogate_module.train
    monkeypatch.setattr(surrogate_module, "train", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    cfg = TrainConfig(epochs=2, batch_size=100)
    events = []
    kwargs = {"epochs": [0, 2], "inits": 2, "train_cfg": cfg, "seed": 0, "cache": Cache(tmp_path)}
    first = compute_scores(mnist, "mlp", ["loss", "el2n", "forgetting"], on_event=events.append, **kwargs)
    assert len(calls) == 2 and first.surrogates_trained == 2
    stages = [e.stage for e in events if isinstance(e, StageStarted)]
    assert stages.count("surrogate") == 2 and stages.count("scoring") == 4
    assert any(isinstance(e, BatchProgress) for e in events)

    again = compute_scores(mnist, "mlp", ["loss", "el2n", "forgetting"], **kwargs)
    assert len(calls) == 2 and again.surrogates_trained == 0
    for key, value in first.arrays().items():
        np.testing.assert_array_equal(again.arrays()[key], value)

    more = compute_scores(mnist, "mlp", ["grad_norm", "loss"], **kwargs)  # new scorer: cached states, no training
    assert len(calls) == 2 and more.surrogates_trained == 0
    np.testing.assert_array_equal(more.get("loss", 2), first.get("loss", 2))
    assert set(first.arrays()) >= {"loss@e0", "loss@e2", "el2n@e2", "forgetting@e2", "predictions@e2", "labels",
                                   "indices"}


# ---------------------------------------------------------------- CLI
def test_cli_score_writes_the_npz_and_exits_2_on_bad_input(shared_data, tmp_path):
    runner = CliRunner()
    out = tmp_path / "scores.npz"
    common = ["score", "--dataset", "mnist", "--data-dir", str(shared_data), "--train-size", "200", "--model", "mlp"]
    result = runner.invoke(main, common + ["--scorers", "loss,grad_norm,random", "--epochs", "0,1", "--inits", "1",
                                           "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    with np.load(out) as f:
        assert set(f.files) == {"loss@e0", "loss@e1", "grad_norm@e0", "grad_norm@e1", "random@e0", "random@e1",
                                "predictions@e0", "predictions@e1", "labels", "indices"}
        assert f["grad_norm@e1"].shape == (200,) and f["labels"].shape == (200,)
    for bad in (["--scorers", "nope"], ["--epochs", "1", "--surrogate-epochs", "0"], ["--inits", "0",
                "--scorers", "el2n"], ["--epochs", "one"]):
        result = runner.invoke(main, common + bad)
        assert result.exit_code == 2, (bad, result.output)


# ---------------------------------------------------------------- a user's own layer
class Scale(nn.Module):
    """y = x * weight + bias per feature: a layer prunelab has no closed form for."""

    def __init__(self, features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(0.5, 1.5, features))
        self.bias = nn.Parameter(torch.linspace(-0.1, 0.1, features))

    def forward(self, x):
        return x * self.weight + self.bias


def test_a_registered_norm_form_is_used_for_a_custom_layer_and_is_exact(mnist, monkeypatch):
    from torch.func import functional_call, grad, vmap

    from engine.scoring.gradnorm import forms

    calls = []

    def scale_form(module, a, g, trainable, workspace):
        calls.append(len(g))
        out = g.new_zeros(len(g))
        if "weight" in trainable:
            out += (a * g).square().sum(1)
        if "bias" in trainable:
            out += g.square().sum(1)
        return out

    monkeypatch.setattr(forms, "NORM_FORMS", dict(forms.NORM_FORMS))  # registered for this test only
    engine.register_norm_form(Scale, scale_form)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), Scale(32), nn.ReLU(), nn.Linear(32, 10)).double()
    model.to(mnist.device)
    n = 64
    fast = score_model(model, mnist, ["grad_norm"], batch_size=16, indices=np.arange(n)).scores["grad_norm"]
    assert calls == [16, 16, 16, 16]  # the form, not the generic fallback, handled the layer

    params = {k: p.detach() for k, p in model.named_parameters()}
    x = to_model_layout(mnist.normalize(mnist.x_train[:n], torch.float64))

    def loss(p, xi, yi):
        return nn.functional.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, mnist.y_train[:n])
    reference = torch.sqrt(sum(g.flatten(1).square().sum(1) for g in per_sample.values())).cpu().numpy()
    np.testing.assert_allclose(fast, reference, rtol=1e-10)

    del forms.NORM_FORMS[Scale]  # without the form, the exact generic fallback gives the same numbers
    generic = score_model(model, mnist, ["grad_norm"], batch_size=16, indices=np.arange(n)).scores["grad_norm"]
    assert len(calls) == 4
    np.testing.assert_allclose(generic, reference, rtol=1e-10)


def test_register_norm_form_refuses_what_is_not_a_layer_class():
    with pytest.raises(TypeError, match="nn.Module subclass"):
        engine.register_norm_form("Linear", lambda *a: None)
