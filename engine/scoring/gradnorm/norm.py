"""Exact per-sample squared gradient norms of BatchNorm layers in eval mode.

In eval mode BatchNorm is a per-channel affine map with fixed statistics,
y = γ·x̂ + β with x̂ = (x − running_mean)/√(running_var + ε), so each sample's
gradient is its own: ∂L/∂γ_c = Σ_s g_{c,s}·x̂_{c,s} and ∂L/∂β_c = Σ_s g_{c,s},
summed over the sample's spatial positions s. In train mode (batch statistics)
every sample's output depends on the whole batch and per-sample gradients are
not defined this way: the scoring pass always puts the model in eval mode, and a
BatchNorm without running statistics (track_running_stats=False) is refused.
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError
from .forms import register_norm_form

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def check_batchnorm(name: str, module: nn.modules.batchnorm._BatchNorm) -> None:
    if module.running_mean is None or module.running_var is None:
        raise ConfigError(f"layer {name!r} ({type(module).__name__}) keeps no running statistics "
                          "(track_running_stats=False), so it normalises with batch statistics even in eval mode "
                          "and per-sample gradients are not independent; build it with track_running_stats=True")


def batchnorm_sqnorm(module: nn.modules.batchnorm._BatchNorm, a: torch.Tensor, g: torch.Tensor,
                     trainable: frozenset[str]) -> torch.Tensor:
    """Per-sample ‖∂L/∂γ‖² + ‖∂L/∂β‖² from the layer's input a and output gradient g, both (N, C, *)."""
    n, c = g.shape[:2]
    g3 = g.reshape(n, c, -1)
    out = g.new_zeros(n)
    if "weight" in trainable:
        mean = module.running_mean.to(g.dtype).view(1, c, 1)
        inv_std = torch.rsqrt(module.running_var.to(g.dtype) + module.eps)
        d_gamma = ((a.reshape(n, c, -1) - mean) * g3).sum(2) * inv_std
        out += d_gamma.square().sum(1)
    if "bias" in trainable:
        out += g3.sum(2).square().sum(1)
    return out


def _batchnorm_form(module, a, g, trainable, workspace):
    return batchnorm_sqnorm(module, a, g, trainable)


for _bn in BATCHNORMS:
    register_norm_form(_bn, _batchnorm_form)
