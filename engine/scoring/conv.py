"""Exact per-sample squared gradient norms of Conv1d/Conv2d layers.

Unfolding the input (im2col) turns a convolution into a Linear layer applied at
every output position p, so the per-sample weight gradient is Σ_p g_p ⊗ u_p and
`linear.outer_sum_sqnorm` applies, choosing per layer between materialising it
(cheap for the small early layers of `cnn` and ResNet: few input channels, many
positions) and the ghost-norm Gram form (cheap for the late layers: few positions,
wide channels). The unfold is done per chunk of samples, inside the kernel's
workspace bound, never for the whole batch at once.

Grouped convolutions are split into groups folded into the batch dimension.
Padding modes other than zeros, and string padding ("same"), are applied with
`F.pad` first, exactly as the layer's own forward does.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .linear import chunk_size, ghost_is_cheaper, outer_sum_sqnorm


def _unfold(module: nn.Conv2d, a: torch.Tensor) -> torch.Tensor:
    """im2col of a (N, Cin, H, W) input with the layer's geometry: (N, Cin·kh·kw, P)."""
    padding = module.padding
    if module.padding_mode != "zeros" or isinstance(padding, str):
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        a = F.pad(a, module._reversed_padding_repeated_twice, mode=mode)
        padding = 0
    return F.unfold(a, module.kernel_size, dilation=module.dilation, padding=padding, stride=module.stride)


def as_conv2d_input(module: nn.Module, a: torch.Tensor, g: torch.Tensor) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Conv1d as a Conv2d over a height of 1: a (N, C, L) becomes (N, C, 1, L); same for g."""
    if isinstance(module, nn.Conv1d):
        proxy = nn.Module()
        proxy.padding_mode = module.padding_mode
        proxy.padding = module.padding if isinstance(module.padding, str) else (0, module.padding[0])
        proxy._reversed_padding_repeated_twice = list(module._reversed_padding_repeated_twice) + [0, 0]
        proxy.kernel_size, proxy.dilation = (1, module.kernel_size[0]), (1, module.dilation[0])
        proxy.stride = (1, module.stride[0])
        return proxy, a.unsqueeze(2), g.unsqueeze(2)
    return module, a, g


def conv_sqnorm(module: nn.Conv1d | nn.Conv2d, a: torch.Tensor, g: torch.Tensor, trainable: frozenset[str],
                workspace: int) -> torch.Tensor:
    """Per-sample ‖∂L/∂W‖² + ‖∂L/∂b‖² of a convolution from its input a and output gradient g."""
    n, c_out = g.shape[:2]
    groups = module.groups
    out = g.new_zeros(n)
    g_flat = g.reshape(n, c_out, -1)  # (N, Cout, P); a view for channels_last too
    if "bias" in trainable:
        out += g_flat.sum(2).square().sum(1)
    if "weight" not in trainable:
        return out
    geometry, a4, _ = as_conv2d_input(module, a, g)
    positions = g_flat.shape[2]
    d_in = module.weight[0].numel()  # Cin/groups · kernel positions
    c_group = c_out // groups
    per_sample = groups * (d_in * positions + (2 * positions * positions if ghost_is_cheaper(positions, d_in, c_group)
                                               else d_in * c_group))
    step = chunk_size(n, per_sample, workspace)
    for s in range(0, n, step):
        u = _unfold(geometry, a4[s:s + step])  # (m, groups·D, P)
        m = u.shape[0]
        if groups == 1:  # transposed views, no copies: bmm reads them as they are
            out[s:s + step] += outer_sum_sqnorm(u.transpose(1, 2), g_flat[s:s + step].transpose(1, 2), workspace)
            continue
        u = u.view(m, groups, d_in, positions).transpose(2, 3).reshape(m * groups, positions, d_in)
        gg = g_flat[s:s + step].reshape(m, groups, c_group, positions).transpose(2, 3).reshape(m * groups, positions,
                                                                                                  c_group)
        out[s:s + step] += outer_sum_sqnorm(u, gg, workspace).view(m, groups).sum(1)
    return out
