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

from .forms import Vectors, register_dot_form, register_norm_form, stack_dots


def _affine_grads(x_hat: torch.Tensor, g: torch.Tensor, shape: tuple[int, ...], trainable: frozenset[str],
                  has_bias: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-sample ∂L/∂γ = Σ (g·x̂) and ∂L/∂β = Σ g over the positions sharing a parameter entry, each (N, |shape|)
    (None when not trainable or absent)."""
    n = g.shape[0]
    d_gamma = _per_entry(g * x_hat, n, shape) if "weight" in trainable else None
    d_beta = _per_entry(g, n, shape) if has_bias and "bias" in trainable else None
    return d_gamma, d_beta


def _affine_sqnorm(x_hat: torch.Tensor, g: torch.Tensor, shape: tuple[int, ...], trainable: frozenset[str],
                   has_bias: bool) -> torch.Tensor:
    """Σ over positions of (g·x̂) and of g, reduced to the parameter's `shape`, squared and summed per sample."""
    out = g.new_zeros(g.shape[0])
    for part in _affine_grads(x_hat, g, shape, trainable, has_bias):
        if part is not None:
            out += part.square().sum(1)
    return out


def _affine_dots(x_hat: torch.Tensor, g: torch.Tensor, shape: tuple[int, ...], trainable: frozenset[str],
                 has_bias: bool, vectors: Vectors) -> torch.Tensor:
    """Per-sample (∂L/∂γ)·v_γ + (∂L/∂β)·v_β for each vector, (N, k)."""
    d_gamma, d_beta = _affine_grads(x_hat, g, shape, trainable, has_bias)
    cols = []
    for v in vectors:
        out = g.new_zeros(g.shape[0])
        if d_gamma is not None:
            out += d_gamma @ v["weight"].reshape(-1)
        if d_beta is not None:
            out += d_beta @ v["bias"].reshape(-1)
        cols.append(out)
    return stack_dots(cols, g.shape[0], g)


def _per_entry(t: torch.Tensor, n: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Sum a sample's values that share one parameter entry: (N, ..., *shape) -> (N, prod(shape))."""
    size = 1
    for s in shape:
        size *= s
    return t.reshape(n, -1, size).sum(1)


def _layernorm_inputs(module: nn.LayerNorm, a: torch.Tensor, g: torch.Tensor):
    x_hat = F.layer_norm(a.to(g.dtype), module.normalized_shape, None, None, module.eps)
    return x_hat, g, tuple(module.normalized_shape), module.bias is not None


def _rmsnorm_inputs(module: nn.RMSNorm, a: torch.Tensor, g: torch.Tensor):
    x_hat = F.rms_norm(a.to(g.dtype), module.normalized_shape, None, module.eps)
    return x_hat, g, tuple(module.normalized_shape), False


def _groupnorm_inputs(module: nn.GroupNorm, a: torch.Tensor, g: torch.Tensor):
    n, c = g.shape[:2]
    x_hat = F.group_norm(a.to(g.dtype), module.num_groups, None, None, module.eps)
    # channels first: (N, C, S) -> (N, S, C), so the per-channel sums run over S
    return (x_hat.reshape(n, c, -1).transpose(1, 2), g.reshape(n, c, -1).transpose(1, 2), (c,),
            module.bias is not None)


def _layernorm2d_inputs(module: nn.LayerNorm, a: torch.Tensor, g: torch.Tensor):
    """A LayerNorm over the channels of NCHW maps (timm's LayerNorm2d): LayerNorm's on NHWC."""
    return _layernorm_inputs(module, a.permute(0, 2, 3, 1), g.permute(0, 2, 3, 1))


def _forms(inputs):
    """The norm form and the inner-product form of a layer family whose x̂, g, shape and bias `inputs` gives."""
    def sqnorm(module, a, g, trainable, workspace):
        x_hat, g2, shape, has_bias = inputs(module, a, g)
        return _affine_sqnorm(x_hat, g2, shape, trainable, has_bias)

    def dots(module, a, g, trainable, vectors, workspace):
        x_hat, g2, shape, has_bias = inputs(module, a, g)
        return _affine_dots(x_hat, g2, shape, trainable, has_bias, vectors)

    return sqnorm, dots


layernorm_form, layernorm_dots = _forms(_layernorm_inputs)
rmsnorm_form, rmsnorm_dots = _forms(_rmsnorm_inputs)
groupnorm_form, groupnorm_dots = _forms(_groupnorm_inputs)
layernorm2d_form, layernorm2d_dots = _forms(_layernorm2d_inputs)
for _layer, (_norm, _dots) in {nn.LayerNorm: (layernorm_form, layernorm_dots), nn.RMSNorm: (rmsnorm_form, rmsnorm_dots),
                               nn.GroupNorm: (groupnorm_form, groupnorm_dots)}.items():
    register_norm_form(_layer, _norm)
    register_dot_form(_layer, _dots)


def register_timm_forms() -> None:
    """timm's LayerNorm (same maths as torch's) and LayerNorm2d; called when timm builds a model, so the
    scoring pass does not import timm otherwise."""
    from timm.layers import LayerNorm, LayerNorm2d

    register_norm_form(LayerNorm, layernorm_form)
    register_norm_form(LayerNorm2d, layernorm2d_form)
    register_dot_form(LayerNorm, layernorm_dots)
    register_dot_form(LayerNorm2d, layernorm2d_dots)
