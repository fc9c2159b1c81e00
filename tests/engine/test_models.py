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
