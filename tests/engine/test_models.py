"""Models: exact per-sample gradient norms of the LayerNorm/GroupNorm/RMSNorm forms against torch.func, output
shapes and determinism of every registered model, on real CIFAR-10 and MNIST images."""
import numpy as np
import pytest
import torch
from torch import nn

from engine.architectures import build_model
from engine.data.dataset import load_dataset
from engine.nets import MODELS
from engine.scoring.batch import score_model
from engine.scoring.gradnorm import forms, persample
from engine.trainer import to_model_layout
from tests.conftest import TEST_DEVICE


@pytest.fixture(scope="module")
def cifar(cifar_npz):
    return load_dataset(cifar_npz, device=TEST_DEVICE, train_size=40, test_size=10)


class Tokens(nn.Module):
    """(N, C, H, W) -> (N, H·W, C): a ViT's token layout, so LayerNorm normalises each token's channels."""

    def forward(self, x):
        return x.flatten(2).transpose(1, 2)


class MeanTokens(nn.Module):
    def forward(self, x):
        return x.mean(1)


def norm_net(num_classes: int = 10) -> nn.Module:
    """Conv → GroupNorm → tokens → LayerNorm → Linear → RMSNorm → LayerNorm without bias → head."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.GroupNorm(4, 8), nn.GELU(), nn.Conv2d(8, 6, 3, 2, 1), nn.GroupNorm(3, 6, eps=1e-3),
        Tokens(), nn.LayerNorm(6), nn.Linear(6, 12), nn.RMSNorm(12, eps=1e-6), nn.GELU(),
        nn.LayerNorm(12, bias=False), MeanTokens(), nn.Linear(12, num_classes))


def torch_func_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The definition: each sample's full parameter gradient by vmap(grad), its norm."""
    from torch.func import functional_call, grad, vmap

    params = {k: p.detach() for k, p in model.named_parameters()}

    def loss(p, xi, yi):
        return nn.functional.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return torch.sqrt(sum(g.flatten(1).square().sum(1) for g in per_sample.values())).cpu().numpy()


def test_layernorm_groupnorm_rmsnorm_forms_are_exact(cifar, monkeypatch):
    torch.manual_seed(0)
    model = norm_net().double().to(cifar.device).eval()
    with torch.no_grad():  # non-trivial affine parameters, so a wrong γ/β term shows
        for m in model.modules():
            if isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)):
                m.weight.normal_(1.0, 0.5)
                if getattr(m, "bias", None) is not None:
                    m.bias.normal_(0.0, 0.5)
    for layer in (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm):
        assert layer in forms.NORM_FORMS

    def no_fallback(module, *args):
        raise AssertionError(f"{type(module).__name__} took the generic fallback")

    monkeypatch.setattr(persample, "generic_sqnorm", no_fallback)
    n = 40
    fast = score_model(model, cifar, ["grad_norm"], batch_size=16, indices=np.arange(n)).scores["grad_norm"]
    x = to_model_layout(cifar.normalize(cifar.x_train[:n], torch.float64))
    reference = torch_func_norms(model, x, cifar.y_train[:n])
    np.testing.assert_allclose(fast, reference, rtol=1e-10)


def test_norm_forms_count_only_trainable_parameters(cifar):
    torch.manual_seed(1)
    model = norm_net().double().to(cifar.device).eval()
    model[1].bias.requires_grad_(False)
    model[6].weight.requires_grad_(False)
    n = 12
    fast = score_model(model, cifar, ["grad_norm"], batch_size=5, indices=np.arange(n)).scores["grad_norm"]
    from torch.func import functional_call, grad, vmap

    trainable = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    frozen = {k: p.detach() for k, p in model.named_parameters() if not p.requires_grad}
    x = to_model_layout(cifar.normalize(cifar.x_train[:n], torch.float64))

    def loss(p, xi, yi):
        return nn.functional.cross_entropy(functional_call(model, {**p, **frozen}, (xi[None],)), yi[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(trainable, x, cifar.y_train[:n])
    reference = torch.sqrt(sum(g.flatten(1).square().sum(1) for g in per_sample.values())).cpu().numpy()
    np.testing.assert_allclose(fast, reference, rtol=1e-10)


# ---------------------------------------------------------------- the networks
from engine.architectures.wrn import wide_resnet  # noqa: E402
from engine.config import TrainConfig  # noqa: E402
from engine.errors import ConfigError, UnknownNameError  # noqa: E402
from engine.nets import check_model_name, model_names  # noqa: E402
from engine.trainer import train  # noqa: E402

BUILT_IN = ["cnn", "mlp", "resnet18", "resnet34", "resnet50", "wrn16_8", "wrn28_10", "vgg16_bn", "airbench"]
PARAMS = {"resnet18": 11_173_962, "resnet34": 21_282_122, "resnet50": 23_520_842, "wrn16_8": 10_961_370,
          "wrn28_10": 36_479_194, "vgg16_bn": 14_728_266, "airbench": 1_972_792}


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_model_builds_to_the_right_shapes(cifar, name):
    assert name in MODELS
    model = build_model(name, cifar.input_shape, 10, seed=0).eval()
    x = cifar.normalize(cifar.x_train[:2])
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        assert model.embed(x).shape[0] == 2
    if name in PARAMS:  # the published sizes (pytorch-cifar's ResNets/VGG, the WRN paper's 11M/36.5M, airbench's 1.97M)
        assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    if name not in ("wrn28_10", "resnet50"):
        grey = build_model(name, (1, 28, 28), 7, seed=0).eval()
        with torch.no_grad():
            assert grey(torch.zeros(2, 1, 28, 28)).shape == (2, 7)


def test_resnet_stem_follows_the_input_size():
    small = build_model("resnet18", (3, 32, 32), 10, seed=0)
    tiny = build_model("resnet18", (3, 64, 64), 200, seed=0)
    large = build_model("resnet18", (3, 128, 128), 10, seed=0)
    assert small.features[0].stride == (1, 1) and tiny.features[0].stride == (2, 2)
    assert large.features[0].kernel_size == (7, 7) and isinstance(large.features[3], nn.MaxPool2d)
    with torch.no_grad():  # the 64-px stem feeds the stages CIFAR's 32×32 maps
        assert tiny.features[:3](torch.zeros(1, 3, 64, 64)).shape == (1, 64, 32, 32)
        assert tiny(torch.zeros(2, 3, 64, 64)).shape == (2, 200)


def test_same_seed_same_weights_and_same_training(cifar):
    a, b, c = (build_model("airbench", cifar.input_shape, 10, seed=s) for s in (3, 3, 4))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))
    cfg = TrainConfig(steps=3, batch_size=16, augment=False)
    runs = [train("airbench", cifar, cfg, seed=5, evaluate_at_end=False, evaluate_every_epoch=False)
            for _ in range(2)]
    for p, q in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values()):
        assert torch.equal(p, q)


def test_airbench_whitening_whitens_the_patches(cifar):
    model = build_model("airbench", cifar.input_shape, 10, seed=0).double()
    x = cifar.normalize(cifar.x_train, torch.float64)
    model.init_from_data(x)
    assert bool(model.whitened)
    whiten = model.features[0]
    first = whiten.weight.clone()
    model.init_from_data(x[:5])  # once only
    assert torch.equal(whiten.weight, first) and not whiten.weight.requires_grad
    out = nn.functional.conv2d(x, whiten.weight[:12])  # the positive half: second moment = diag(λ/(λ+eps)) ≈ I
    flat = out.permute(1, 0, 2, 3).reshape(12, -1).numpy()
    moment = flat @ flat.T / flat.shape[1]
    # the patch statistics computed apart, in numpy: airbench's uncentred PᵀP/n over every 2×2 patch
    xn = x.numpy()
    patches = np.lib.stride_tricks.sliding_window_view(xn, (2, 2), axis=(2, 3)).transpose(0, 2, 3, 1, 4, 5)
    patches = patches.reshape(-1, 12)
    values = np.linalg.eigvalsh(patches.T @ patches / len(patches))
    np.testing.assert_allclose(moment, np.diag(values / (values + 5e-4)), atol=1e-10)
    assert np.abs(np.diag(moment)[-10:] - 1).max() < 0.1  # all but the two faintest directions: about unit variance


def test_tta_is_the_mean_of_the_mirrored_and_shifted_views(cifar):
    from engine.trainer import evaluate, tta_logits

    torch.manual_seed(0)
    model = build_model("cnn", cifar.input_shape, 10, seed=2).double().eval()
    x = cifar.normalize(cifar.x_train[:6], torch.float64)
    xn = x.numpy()

    def f(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(images))).numpy()

    padded = np.pad(xn, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    up_left, down_right = padded[:, :, :32, :32], padded[:, :, 2:, 2:]
    flip = lambda a: a[..., ::-1]  # noqa: E731
    mirror = f(xn) / 2 + f(flip(xn)) / 2
    reference = mirror / 2 + (f(up_left) + f(flip(up_left)) + f(down_right) + f(flip(down_right))) / 8
    with torch.no_grad():
        np.testing.assert_allclose(tta_logits(model, x, "flip").numpy(), mirror, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(tta_logits(model, x, "flip_translate").numpy(), reference, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(tta_logits(model, x).numpy(), f(xn))
    assert np.abs(reference - f(xn)).max() > 1e-3  # the views differ, so the test could fail
    # the trainer's test accuracy is the TTA one when the config asks for it
    cfg = TrainConfig(steps=4, batch_size=20, tta="flip_translate")
    result = train("mlp", cifar, cfg, seed=0)
    assert result.test_accuracy == evaluate(result.model, cifar, tta="flip_translate")[0]


def test_airbench_preset_is_the_recipe():
    from engine.architectures.airbench import RECIPE
    from engine.config import load_config

    config = load_config("airbench-cifar10")
    assert config.model == "airbench"
    assert {k: getattr(config.train, k) for k in RECIPE} == RECIPE
    assert RECIPE["lr"] == pytest.approx(11.5 / (1 + 1 / 0.15)) and RECIPE["label_smoothing"] == 0.2
    assert RECIPE["lr"] * RECIPE["weight_decay"] == pytest.approx(0.0153 * 1024 / (1024 * (1 + 1 / 0.15)), rel=1e-5)
    from engine.architectures.airbench import recipe
    from engine.bench.train import RECIPES

    assert RECIPES["airbench"] is recipe and recipe(256)["lr"] == RECIPE["lr"] / 4  # the same lr per example
    assert TrainConfig(**recipe(256)).tta == "flip_translate"


def test_exact_grad_norms_of_airbench_and_a_wide_resnet(cifar):
    for model in (build_model("airbench", cifar.input_shape, 10, seed=0).double(),
                  wide_resnet(cifar.input_shape, 10, depth=10, k=1).double()):
        model = model.to(cifar.device)
        if hasattr(model, "init_from_data"):
            model.init_from_data(cifar.normalize(cifar.x_train, torch.float64))
        model.eval()
        n = 6
        fast = score_model(model, cifar, ["grad_norm"], batch_size=4, indices=np.arange(n)).scores["grad_norm"]
        x = to_model_layout(cifar.normalize(cifar.x_train[:n], torch.float64))
        trainable = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
        frozen = {k: p.detach() for k, p in model.named_parameters() if not p.requires_grad}
        from torch.func import functional_call, grad, vmap

        def loss(p, xi, yi, model=model, frozen=frozen):
            return nn.functional.cross_entropy(functional_call(model, {**p, **frozen}, (xi[None],)), yi[None])

        per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(trainable, x, cifar.y_train[:n])
        reference = torch.sqrt(sum(g.flatten(1).square().sum(1) for g in per_sample.values())).cpu().numpy()
        np.testing.assert_allclose(fast, reference, rtol=1e-10)


def test_library_models_by_prefix(cifar):
    pytest.importorskip("timm")
    assert "timm:NAME" in model_names() and "torchvision:NAME" in model_names()
    for name in ("timm:resnet10t", "torchvision:resnet18", "timm:vit_tiny_patch16_224"):
        check_model_name(name)
        model = build_model(name, cifar.input_shape, 10, seed=0).eval()
        with torch.no_grad():
            assert model(cifar.normalize(cifar.x_train[:2])).shape == (2, 10)
            assert model.embed(cifar.normalize(cifar.x_train[:2])).shape[0] == 2
        # each parameter once (the classifier is not registered a second time), so torch.func's vmap, which the
        # bench runs as a peer, leaves the model's own parameters behind and the model can still be moved
        assert all(k.startswith("model.") for k in model.state_dict()) and isinstance(model.head, nn.Linear)
    torch_func_norms(model, cifar.normalize(cifar.x_train[:2]), cifar.y_train[:2])
    model.to(cifar.device)
    grey = build_model("torchvision:resnet18", (1, 28, 28), 10, seed=0).eval()
    with torch.no_grad():
        assert grey(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ConfigError, match="timm has no model 'no_such_net'"):
        build_model("timm:no_such_net", cifar.input_shape, 10)
    with pytest.raises(ConfigError, match="torchvision has no model 'no_such_net'"):
        build_model("torchvision:no_such_net", cifar.input_shape, 10)
    with pytest.raises(ConfigError, match="needs a name"):
        check_model_name("timm:")
    with pytest.raises(UnknownNameError):
        check_model_name("resnet99")


def test_exact_grad_norms_of_a_timm_vit_use_the_layernorm_form(cifar):
    pytest.importorskip("timm")
    import timm

    from engine.scoring.gradnorm.groupnorm import register_timm_forms

    register_timm_forms()  # what build_model("timm:...") does
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, img_size=32, patch_size=8,
                              embed_dim=24, depth=2, num_heads=2).double().to(cifar.device).eval()
    layernorms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(layernorms) == 5 and all(type(m) in forms.NORM_FORMS for m in layernorms)  # 2 per block, 1 final
    n = 6
    fast = score_model(model, cifar, ["grad_norm"], batch_size=4, indices=np.arange(n)).scores["grad_norm"]
    x = to_model_layout(cifar.normalize(cifar.x_train[:n], torch.float64))
    np.testing.assert_allclose(fast, torch_func_norms(model, x, cifar.y_train[:n]), rtol=1e-10)


def test_timm_layernorm2d_form_is_exact(cifar, monkeypatch):
    pytest.importorskip("timm")
    from timm.layers import LayerNorm2d

    from engine.scoring.gradnorm.groupnorm import register_timm_forms

    register_timm_forms()
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), LayerNorm2d(8), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 10)).double().to(cifar.device).eval()
    with torch.no_grad():
        model[1].weight.normal_(1.0, 0.5)
        model[1].bias.normal_(0.0, 0.5)
    monkeypatch.setattr(persample, "generic_sqnorm", lambda *a, **k: (_ for _ in ()).throw(AssertionError("fallback")))
    n = 10
    fast = score_model(model, cifar, ["grad_norm"], batch_size=4, indices=np.arange(n)).scores["grad_norm"]
    x = to_model_layout(cifar.normalize(cifar.x_train[:n], torch.float64))
    np.testing.assert_allclose(fast, torch_func_norms(model, x, cifar.y_train[:n]), rtol=1e-10)


def test_bench_train_takes_several_models_and_reports_accuracy():
    from click.testing import CliRunner

    from engine.cli import main

    result = CliRunner().invoke(main, ["bench", "train", "--dataset", "mnist-mini", "--model", "mlp,cnn",
                                       "--samples", "256", "--epochs", "1", "--train-size", "500", "--json"])
    assert result.exit_code == 0, result.output
    import json

    out = json.loads(result.stdout)
    assert [r["model"] for r in out] == ["mlp", "cnn"]
    for r in out:
        assert r["ours"]["samples_per_second"] > 0 and r["accuracy"]["train_samples"] == 500
        assert r["accuracy"]["test_accuracy"] > 0.2 and r["accuracy"]["wall_seconds"] > 0  # chance 0.1
        assert r["streamed"]["samples"] == r["ours"]["samples"] and r["accuracy"]["recipe"] == "default"
        assert r["streamed"]["ratio_to_device"] == pytest.approx(
            r["streamed"]["samples_per_second"] / r["ours"]["samples_per_second"], abs=0.01)
