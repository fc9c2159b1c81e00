"""Exact per-sample squared gradient norms of Conv1d/Conv2d layers.

Unfolding the input (im2col) turns a convolution into a Linear layer applied at
every output position p, so the per-sample weight gradient is Σ_p g_p ⊗ u_p and
`linear.outer_sum_sqnorm` applies, choosing per layer between materialising it
(cheap for the small early layers of `cnn` and ResNet: few input channels, many
positions) and the ghost-norm Gram form (cheap for the late layers: few positions,
wide channels). The patches are cut per chunk of samples, inside the workspace
bound, never for the whole batch at once.

The patches are a strided view of the (padded) input copied once into a matrix,
in whichever of two orders gives the copy the longer contiguous runs: from NHWC
(runs of kernel-width × channels; the trainer's channels_last layout, so no
transpose) or from NCHW (runs of an output row; better for one input channel).
This is several times faster on the CPU than `F.unfold`, which loops per sample.

Grouped convolutions are split into groups folded into the batch dimension.
Padding (any mode, or "same") is applied with `F.pad` exactly as the layer does.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .forms import Vectors, register_dot_form, register_norm_form, stack_dots
from .linear import Workspace, chunk_size, ghost_is_cheaper, outer_sum_sqnorm


@dataclass(frozen=True)
class Geometry:
    """A convolution's geometry in 2-D terms (Conv1d is a Conv2d over a height of 1)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int, int, int]  # F.pad order: left, right, top, bottom
    pad_mode: str
    groups: int

    @classmethod
    def of(cls, module: nn.Conv1d | nn.Conv2d) -> Geometry:
        pad = tuple(module._reversed_padding_repeated_twice)
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        if isinstance(module, nn.Conv1d):
            return cls((1, module.kernel_size[0]), (1, module.stride[0]), (1, module.dilation[0]),
                       (pad[0], pad[1], 0, 0), mode, module.groups)
        return cls(tuple(module.kernel_size), tuple(module.stride), tuple(module.dilation), pad, mode, module.groups)

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        return tuple((size - d * (k - 1) - 1) // s + 1 for size, k, s, d in
                     zip((h, w), self.kernel, self.stride, self.dilation))  # type: ignore[return-value]


def patches(geo: Geometry, a: torch.Tensor, ws: Workspace | None = None) -> torch.Tensor:
    """The im2col patches of a (N, C, H, W) input as (N, P, D), D = C·kh·kw (possibly a transposed view).

    Written into the front of `ws` when given (else freshly allocated). For groups > 1
    the channel-major order (NCHW) is used, so D splits by group as (groups, D/groups).
    """
    if any(geo.pad):
        a = F.pad(a, geo.pad, mode=geo.pad_mode)
    n, c, h, w = a.shape
    ho, wo = geo.output_size(h, w)
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    run_nhwc = c * kw if dw == 1 else c
    run_nchw = wo if sw == 1 else 1
    if geo.groups == 1 and run_nhwc >= run_nchw:
        x = a.permute(0, 2, 3, 1).contiguous()  # free for channels_last input
        s_n, s_h, s_w, _ = x.stride()
        view = x.as_strided((n, ho, wo, kh, kw, c), (s_n, sh * s_h, sw * s_w, dh * s_h, dw * s_w, 1))
        return _copy(view, ws).view(n, ho * wo, kh * kw * c)
    x = a.contiguous()
    s_n, s_c, s_h, _ = x.stride()
    view = x.as_strided((n, c, kh, kw, ho, wo), (s_n, s_c, dh * s_h, dw, sh * s_h, sw))
    return _copy(view, ws).view(n, c * kh * kw, ho * wo).transpose(1, 2)


def _copy(view: torch.Tensor, ws: Workspace | None) -> torch.Tensor:
    if ws is None:
        return view.contiguous()
    (out,) = ws.views(view, tuple(view.shape))
    return out.copy_(view)


def conv_sqnorm(module: nn.Conv1d | nn.Conv2d, a: torch.Tensor, g: torch.Tensor, trainable: frozenset[str],
                ws: Workspace) -> torch.Tensor:
    """Per-sample ‖∂L/∂W‖² + ‖∂L/∂b‖² of a convolution from its input a and output gradient g."""
    n, c_out = g.shape[:2]
    g_flat = g.reshape(n, c_out, -1)  # (N, Cout, P); a view for channels_last too
    out = g_flat.sum(2).square().sum(1) if "bias" in trainable else g.new_zeros(n)
    if "weight" not in trainable:
        return out
    geo = Geometry.of(module)
    if isinstance(module, nn.Conv1d):
        a = a.unsqueeze(2)
    groups = geo.groups
    positions = g_flat.shape[2]
    d_in = module.weight[0].numel()  # Cin/groups · kernel positions
    c_group = c_out // groups
    kernel_per_sample = 2 * positions * positions if ghost_is_cheaper(positions, d_in, c_group) else d_in * c_group
    step = chunk_size(n, groups * (d_in * positions + kernel_per_sample), ws.limit)
    for s in range(0, n, step):
        u = patches(geo, a[s:s + step], ws if groups == 1 else None)  # (m, P, groups·D), at the front of ws
        skip = u.numel() if groups == 1 else 0
        g_chunk = g_flat[s:s + step].transpose(1, 2)  # (m, P, Cout)
        if groups > 1:
            m = u.shape[0]
            u = u.transpose(1, 2).reshape(m, groups, d_in, positions).reshape(m * groups, d_in, positions)
            u = u.transpose(1, 2)
            g_chunk = g_chunk.reshape(m, positions, groups, c_group).permute(0, 2, 1, 3).reshape(
                m * groups, positions, c_group)
            out[s:s + step] += outer_sum_sqnorm(u, g_chunk, ws).view(m, groups).sum(1)
        else:
            out[s:s + step] += outer_sum_sqnorm(u, g_chunk, ws, skip)
    return out


def conv_dots(module: nn.Conv1d | nn.Conv2d, a: torch.Tensor, g: torch.Tensor, trainable: frozenset[str],
              vectors: Vectors, ws: Workspace) -> torch.Tensor:
    """Per-sample g_n · v_j of a convolution, (N, k), from its input a and output gradient g.

    The weight gradient is Σ_p g_p ⊗ u_p over output positions (u_p the patch), so
    ⟨G_n, V⟩ = Σ_p g_p · (V u_p): the layer's own convolution of its input with V as
    the weight (its padding, stride, dilation and groups, by the layer's
    `_conv_forward`), dotted with g. One convolution per vector, no patches; the
    bias adds (Σ_p g_p) · v_b.
    """
    n, c_out = g.shape[:2]
    positions = tuple(range(1, g.ndim))
    g_sum = g.reshape(n, c_out, -1).sum(2) if "bias" in trainable else None
    cols = []
    for v in vectors:
        out = g.new_zeros(n)
        if "weight" in trainable:
            out += (module._conv_forward(a, v["weight"], None) * g).sum(positions)
        if g_sum is not None:
            out += g_sum @ v["bias"]
        cols.append(out)
    return stack_dots(cols, n, g)


class _InputGradByFold(torch.autograd.Function):
    """Identity on a first conv layer's output; its backward gives the layer's input gradient by GEMM + col2im.

    oneDNN's backward-data kernel is pathologically slow for convolutions with one
    or three input channels on the CPU (20x its own forward for `cnn`'s first layer
    here; the trainer never needs it), and input_grad_norm needs exactly that
    gradient. Wᵀ·g followed by a fold is the same sum, several times faster. The
    forward copies the output once, so in-place ops after the layer stay legal.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, out: torch.Tensor, weight: torch.Tensor, module: nn.Conv2d) -> torch.Tensor:
        ctx.weight, ctx.module, ctx.size = weight, module, tuple(x.shape[-2:])
        return out.clone()

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        m = ctx.module
        n, c_out = g.shape[:2]
        cols = torch.matmul(ctx.weight.reshape(c_out, -1).t(), g.reshape(n, c_out, -1))  # (N, Cin·kh·kw, P)
        grad_x = F.fold(cols, ctx.size, m.kernel_size, dilation=m.dilation, padding=m.padding, stride=m.stride)
        return grad_x, None, None, None


def input_grad_by_fold(module: nn.Module) -> bool:
    """Whether a conv layer fed the input directly should get its input gradient from `_InputGradByFold`."""
    return (type(module) is nn.Conv2d and module.groups == 1 and module.padding_mode == "zeros"
            and not isinstance(module.padding, str) and module.in_channels <= 4)


def fold_input_grad_hook(current_input: Callable[[], torch.Tensor | None]) -> Callable:
    """A forward hook: on the CPU, when a layer's input is the batch itself, route its input gradient via a fold."""
    def hook(module: nn.Conv2d, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if args and args[0] is current_input() and output.requires_grad and output.device.type == "cpu":
            return _InputGradByFold.apply(args[0], output.detach(), module.weight.detach(), module)
        return None
    return hook


register_norm_form(nn.Conv1d, conv_sqnorm)
register_norm_form(nn.Conv2d, conv_sqnorm)
register_dot_form(nn.Conv1d, conv_dots)
register_dot_form(nn.Conv2d, conv_dots)
