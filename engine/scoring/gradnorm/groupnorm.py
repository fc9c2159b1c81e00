"""Exact per-sample squared gradient norms of LayerNorm, GroupNorm and RMSNorm, the norms of timm's ViTs and convnets.

Unlike BatchNorm these normalise each sample with its own statistics, so they are
per-sample in train and eval mode alike: with x̂ the normalised input (computed
here exactly as the layer does, by the same functional with no affine part),
y = γ·x̂ + β gives ∂L/∂γ = Σ g·x̂ and ∂L/∂β = Σ g, summed over each sample's
positions that share a parameter entry:
- LayerNorm / RMSNorm: γ, β have the normalised shape (the last dims); the sum runs
  over the sample's other dims (a ViT's tokens). RMSNorm has no β and no mean.
- GroupNorm: γ, β are per channel; the sum runs over the spatial positions.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .forms import register_norm_form


def _affine_sqnorm(x_hat: torch.Tensor, g: torch.Tensor, shape: tuple[int, ...], trainable: frozenset[str],
                   has_bias: bool) -> torch.Tensor:
    """Σ over positions of (g·x̂) and of g, reduced to the parameter's `shape`, squared and summed per sample."""
    n = g.shape[0]
    out = g.new_zeros(n)
    if "weight" in trainable:
        out += _per_entry(g * x_hat, n, shape).square().sum(1)
    if has_bias and "bias" in trainable:
        out += _per_entry(g, n, shape).square().sum(1)
    return out


def _per_entry(t: torch.Tensor, n: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Sum a sample's values that share one parameter entry: (N, ..., *shape) -> (N, prod(shape))."""
    size = 1
    for s in shape:
        size *= s
    return t.reshape(n, -1, size).sum(1)


@register_norm_form(nn.LayerNorm)
def layernorm_form(module: nn.LayerNorm, a, g, trainable, workspace):
    x_hat = F.layer_norm(a.to(g.dtype), module.normalized_shape, None, None, module.eps)
    return _affine_sqnorm(x_hat, g, tuple(module.normalized_shape), trainable, module.bias is not None)


@register_norm_form(nn.RMSNorm)
def rmsnorm_form(module: nn.RMSNorm, a, g, trainable, workspace):
    x_hat = F.rms_norm(a.to(g.dtype), module.normalized_shape, None, module.eps)
    return _affine_sqnorm(x_hat, g, tuple(module.normalized_shape), trainable, False)


@register_norm_form(nn.GroupNorm)
def groupnorm_form(module: nn.GroupNorm, a, g, trainable, workspace):
    n, c = g.shape[:2]
    x_hat = F.group_norm(a.to(g.dtype), module.num_groups, None, None, module.eps)
    # channels first: (N, C, S) -> (N, S, C), so the per-channel sums run over S
    return _affine_sqnorm(x_hat.reshape(n, c, -1).transpose(1, 2), g.reshape(n, c, -1).transpose(1, 2), (c,),
                          trainable, module.bias is not None)


def layernorm2d_form(module: nn.LayerNorm, a, g, trainable, workspace):
    """A LayerNorm over the channels of NCHW maps (timm's LayerNorm2d): LayerNorm's form on NHWC."""
    return layernorm_form(module, a.permute(0, 2, 3, 1), g.permute(0, 2, 3, 1), trainable, workspace)


def register_timm_forms() -> None:
    """timm's LayerNorm (same maths as torch's) and LayerNorm2d; called when timm builds a model, so the
    scoring pass does not import timm otherwise."""
    from timm.layers import LayerNorm, LayerNorm2d

    register_norm_form(LayerNorm, layernorm_form)
    register_norm_form(LayerNorm2d, layernorm2d_form)
