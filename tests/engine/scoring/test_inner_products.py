"""Per-sample gradient inner products g_n · v (gradnorm/'s inner-product forms): every layer family, layer by layer,
against a per-sample autograd loop in float64 at rtol 1e-10."""
import numpy as np
import pytest
import torch
from torch import nn

import engine.scoring.gradnorm.persample as persample
from engine.config import TrainConfig
from engine.errors import ConfigError
from engine.scoring.gradnorm import DOT_FORMS, NORM_FORMS, PerSampleGradNorms, register_dot_form
from engine.trainer import to_model_layout, train

EXACT = 1e-10  # float64: the forms and the loop agree to ~1e-15; a layer off by a relative 1e-6 must fail
CHUNKED = {"unchunked": {"workspace_mb": 1e3}, "chunked": {"workspace_mb": 1e-4}}


def trainable_layers(model: nn.Module) -> dict[str, list[str]]:
    """Layer name -> the full names of its own trainable parameters (the model's own under its class name)."""
    layers = {}
    for name, module in model.named_modules():
        own = [f"{name}.{k}" if name else k for k, p in module.named_parameters(recurse=False) if p.requires_grad]
        if own:
            layers[name or type(model).__name__] = own
    return layers


def random_vectors(model: nn.Module, k: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """k parameter-shaped float64 vectors (every parameter, trainable or not: the frozen ones must be ignored)."""
    gen = torch.Generator().manual_seed(seed)
    return [{name: torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.device)
             for name, p in model.named_parameters()} for _ in range(k)]


def slow_products(model: nn.Module, x: torch.Tensor, y: torch.Tensor, vectors) -> tuple[dict, dict]:
    """The definition, one sample at a time: each layer's (n, k) inner products g_n · v_j and its (n,) squares."""
    layers = trainable_layers(model)
    params = dict(model.named_parameters())
    names = [name for own in layers.values() for name in own]
    dots = {layer: np.zeros((len(y), len(vectors))) for layer in layers}
    squares = {layer: np.zeros(len(y)) for layer in layers}
    for i in range(len(y)):
        loss = nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
        grads = dict(zip(names, torch.autograd.grad(loss, [params[n] for n in names])))
        for layer, own in layers.items():
            squares[layer][i] = sum(grads[n].square().sum() for n in own).item()
            for j, v in enumerate(vectors):
                dots[layer][i, j] = sum((grads[n] * v[n]).sum() for n in own).item()
    return dots, squares


def fast_products(model: nn.Module, x: torch.Tensor, y: torch.Tensor, vectors, batch_size: int,
                  **kwargs) -> tuple[dict, dict, np.ndarray]:
    """Each layer's inner products and squares from the one-pass hooks, and the whole model's (n, k) products."""
    layer_dots: dict[str, list] = {}
    layer_sq: dict[str, list] = {}
    totals = []
    with PerSampleGradNorms(model, per_layer=True, vectors=vectors, **kwargs) as hooks:
        for start in range(0, len(y), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            hooks.begin(len(yb), torch.float64, x.device)
            loss = nn.functional.cross_entropy(model(xb), yb, reduction="sum")
            torch.autograd.grad(loss, hooks.roots)
            hooks.finish()
            torch.testing.assert_close(sum(hooks.layer_dots.values()), hooks.dots, rtol=1e-13, atol=1e-300)
            totals.append(hooks.dots.cpu().numpy())
            for name, d in hooks.layer_dots.items():
                layer_dots.setdefault(name, []).append(d.cpu().numpy())
            for name, sq in hooks.layer_sq.items():
                layer_sq.setdefault(name, []).append(sq.cpu().numpy())
    return ({k: np.concatenate(v) for k, v in layer_dots.items()},
            {k: np.concatenate(v) for k, v in layer_sq.items()}, np.concatenate(totals))


def assert_products_exact(model: nn.Module, dataset, n: int, batch_size: int, k: int = 2, **kwargs) -> None:
    """Every layer's g_n · v_j for k random vectors, the model's total, and the norms beside them, at rtol 1e-10."""
    model = model.to(dataset.device).eval()
    x = to_model_layout(dataset.normalize(dataset.x_train[:n], torch.float64))
    y = dataset.y_train[:n]
    vectors = random_vectors(model, k, seed=n)
    slow_dots, slow_sq = slow_products(model, x, y, vectors)
    fast_dots, fast_sq, total = fast_products(model, x, y, vectors, batch_size, **kwargs)
    assert fast_dots.keys() == slow_dots.keys() == fast_sq.keys()
    for name, d in slow_dots.items():
        assert d.shape == (n, k) and np.abs(d).max() > 0, name
        np.testing.assert_allclose(fast_dots[name], d, rtol=EXACT, atol=EXACT * np.abs(d).max(),
                                   err_msg=f"layer {name!r}")
        np.testing.assert_allclose(fast_sq[name], slow_sq[name], rtol=EXACT, atol=0, err_msg=f"layer {name!r}")
    whole = sum(slow_dots.values())
    np.testing.assert_allclose(total, whole, rtol=EXACT, atol=EXACT * np.abs(whole).max())


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_inner_products_of_linear_and_conv_layers_match_the_autograd_loop(mnist, name):
    """48 MNIST samples: the mlp's Linear layers on 2-D inputs, the cnn's Conv2d (channels_last) and Linear."""
    model = train(name, mnist, TrainConfig(steps=6, batch_size=50), seed=0).model.double()  # partly trained
    assert_products_exact(model, mnist, 48, batch_size=16)


def test_inner_products_of_batchnorm2d_in_eval_mode(cifar):
    """10 CIFAR images through conv-BatchNorm2d blocks (ResNet's, in miniature) with non-trivial running statistics
    and affine parameters: BatchNorm2d's form, and the convs' on channels_last input."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).double()
    gen = torch.Generator().manual_seed(0)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.momentum = None  # running statistics = those of the next batch: eval-mode BN is not the identity
        with torch.no_grad():
            bn.weight.copy_(1 + 0.3 * torch.randn(bn.weight.shape, generator=gen, dtype=torch.float64))
            bn.bias.copy_(0.1 * torch.randn(bn.bias.shape, generator=gen, dtype=torch.float64))
    with torch.no_grad():
        model.train()(cifar.normalize(cifar.x_train[4:12], torch.float64))
    assert not torch.allclose(model[1].running_var, torch.ones_like(model[1].running_var))
    assert_products_exact(model.to(memory_format=torch.channels_last), cifar, 10, batch_size=5)


class Assorted(nn.Module):
    """Every other path: reflect/'same' and circular padding, grouped and dilated convs, Conv1d, GroupNorm,
    LayerNorm, RMSNorm, BatchNorm1d, a Linear on 3-D input, a partly frozen layer, the model's own Parameter
    (the torch.func fallback) and a frozen layer."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding="same", padding_mode="reflect")
        self.gn = nn.GroupNorm(2, 8)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, groups=4, dilation=2, padding=1, padding_mode="circular")
        self.c1d = nn.Conv1d(8, 6, 3, padding=1)
        self.bn1d = nn.BatchNorm1d(6)
        self.ln = nn.LayerNorm(6)
        self.tokens = nn.Linear(6, 5)
        self.rms = nn.RMSNorm(5)
        self.partly_frozen = nn.Linear(5, 5)
        self.partly_frozen.weight.requires_grad_(False)
        self.frozen = nn.Linear(5, 5)
        self.frozen.requires_grad_(False)
        self.scale = nn.Parameter(torch.full((1,), 1.5))
        self.head = nn.Linear(5, 10)

    def forward(self, x):
        h = torch.relu(self.gn(self.c1(x)))
        h = self.c2(h).flatten(2)  # (N, 8, L)
        h = self.bn1d(self.c1d(h)).transpose(1, 2)  # (N, L, 6)
        h = self.rms(self.tokens(self.ln(h)))  # (N, L, 5)
        return self.head(self.frozen(self.partly_frozen(h.mean(1))) * self.scale)


def assorted() -> Assorted:
    torch.manual_seed(0)
    model = Assorted().double()
    with torch.no_grad():  # affine parameters and running statistics away from 1 and 0
        for m in (model.gn, model.ln, model.rms, model.bn1d):
            m.weight.normal_(1.0, 0.5)
            if getattr(m, "bias", None) is not None:
                m.bias.normal_(0.0, 0.5)
        model.bn1d.running_mean.normal_(0.0, 0.3)
        model.bn1d.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("chunks", CHUNKED)
def test_inner_products_of_every_other_layer_family_and_the_generic_fallback(cifar, monkeypatch, chunks):
    """10 CIFAR images, chunked and not: the model's own Parameter takes the torch.func fallback (and only it)."""
    generic = []
    real = persample.generic_products

    def spy(module, *args, **kwargs):
        generic.append(module)
        return real(module, *args, **kwargs)

    monkeypatch.setattr(persample, "generic_products", spy)
    model = assorted()
    assert_products_exact(model, cifar, 10, batch_size=5, **CHUNKED[chunks])
    assert set(generic) == {model}


def test_a_layer_without_an_inner_product_form_takes_the_fallback_and_a_registered_one_is_used(mnist, monkeypatch):
    """A custom layer: with only a norm form, its norms come from the form and its inner products from torch.func;
    with a registered inner-product form, that form is used, and both are exact."""

    class Scale(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.weight = nn.Parameter(torch.linspace(0.5, 1.5, n, dtype=torch.float64))

        def forward(self, x):
            return x * self.weight

    def scale_grads(a, g):
        return (a * g).reshape(len(g), -1, a.shape[-1]).sum(1)  # ∂L/∂w per sample

    def scale_sq(module, a, g, trainable, ws):
        return scale_grads(a, g).square().sum(1)

    def scale_dots(module, a, g, trainable, vectors, ws):
        used.append(module)
        return torch.stack([scale_grads(a, g) @ v["weight"] for v in vectors], 1)

    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), Scale(16), nn.Tanh(), nn.Linear(16, 10)).double()
    monkeypatch.setitem(NORM_FORMS, Scale, scale_sq)
    used: list[nn.Module] = []
    generic, generic_norms = [], []
    real = persample.generic_products
    monkeypatch.setattr(persample, "generic_products", lambda m, *a, **k: generic.append(m) or real(m, *a, **k))
    monkeypatch.setattr(persample, "generic_sqnorm", lambda m, *a, **k: generic_norms.append(m))
    assert_products_exact(model, mnist, 12, batch_size=6)
    assert set(generic) == {model[2]} and not used and not generic_norms
    monkeypatch.setitem(DOT_FORMS, Scale, None)
    register_dot_form(Scale, scale_dots)
    generic.clear()
    assert_products_exact(model, mnist, 12, batch_size=6)
    assert used and not generic


def test_inner_products_without_norms_and_with_bad_vectors(mnist):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, 10)).double().eval()
    x = to_model_layout(mnist.normalize(mnist.x_train[:6], torch.float64))
    y = mnist.y_train[:6]
    vectors = random_vectors(model, 1, seed=3)
    slow, _ = slow_products(model, x, y, vectors)
    with PerSampleGradNorms(model, vectors=vectors, norms=False) as hooks:
        hooks.begin(6, torch.float64, x.device)
        torch.autograd.grad(nn.functional.cross_entropy(model(x), y, reduction="sum"), hooks.roots)
        assert not hooks.finish().any()  # no norms asked
        np.testing.assert_allclose(hooks.dots.numpy(), sum(slow.values()), rtol=EXACT)
    missing = {k: v for k, v in vectors[0].items() if k != "3.bias"}
    with pytest.raises(ConfigError, match="no entry for trainable parameter '3.bias'"):
        PerSampleGradNorms(model, vectors=[missing])
    wrong = {**vectors[0], "1.weight": torch.zeros(3, 3, dtype=torch.float64)}
    with pytest.raises(ConfigError, match=r"'1.weight' has shape \(3, 3\), the parameter \(8, 784\)"):
        PerSampleGradNorms(model, vectors=[wrong])
    with pytest.raises(TypeError, match="nn.Module subclass"):
        register_dot_form("Linear", lambda *a: None)
