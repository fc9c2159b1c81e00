"""Exact per-sample squared gradient norms of Linear layers, and the shared outer-product kernel.

A Linear layer's per-sample weight gradient is a sum of outer products,
G_n = Σ_p g_{n,p} a_{n,p}ᵀ over the positions p a sample spreads over (one
position for 2-D inputs, T tokens for (N, T, d) inputs, the output pixels of a
convolution after unfolding). Its squared Frobenius norm has two exact forms:

- materialise G_n (C × D) and sum its squares: P·C·D multiply-adds per sample,
  C·D numbers of workspace;
- the ghost norm ‖G_n‖² = Σ_{p,q} (a_p·a_q)(g_p·g_q) from two P × P Gram
  matrices: P²·(D + C) multiply-adds, P² numbers of workspace.

`outer_sum_sqnorm` picks the cheaper one per layer and walks the batch in chunks
so its workspace stays under a bound: the per-sample gradients of the whole model
never exist at once, at most those of one layer for one chunk of samples.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .forms import Vectors, register_dot_form, register_norm_form, stack_dots


class Workspace:
    """Scratch memory for the per-sample computations, reused across layers and batches.

    `limit` is how many numbers one layer's temporaries may take at once (the batch
    is chunked to fit). The memory itself is one flat buffer handed out as views:
    layers run one after another in the backward, so one buffer serves them all, and
    reusing it matters on the CPU, where a fresh allocation of tens of MB page-faults
    on every batch and costs as much as the arithmetic done in it.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self._flat: torch.Tensor | None = None

    def views(self, like: torch.Tensor, *shapes: tuple[int, ...]) -> list[torch.Tensor]:
        """Uninitialised tensors of these shapes (dtype and device of `like`), valid until the next call."""
        sizes = [math.prod(s) for s in shapes]
        flat = self._flat
        if flat is None or flat.numel() < sum(sizes) or flat.dtype != like.dtype or flat.device != like.device:
            flat = self._flat = torch.empty(sum(sizes), dtype=like.dtype, device=like.device)
        out, offset = [], 0
        for shape, size in zip(shapes, sizes):
            out.append(flat[offset:offset + size].view(shape))
            offset += size
        return out


def ghost_is_cheaper(positions: int, d_in: int, d_out: int) -> bool:
    """True when the Gram (ghost-norm) form costs fewer multiply-adds than materialising G_n."""
    return positions * positions * (d_in + d_out) < positions * d_in * d_out


def chunk_size(n: int, per_sample: int, workspace: int) -> int:
    """Samples per chunk so that chunk · per_sample numbers fit in `workspace` numbers (at least 1)."""
    return max(1, min(n, workspace // max(1, per_sample)))


def outer_sum_sqnorm(a: torch.Tensor, g: torch.Tensor, ws: Workspace, skip: int = 0) -> torch.Tensor:
    """‖Σ_p g[n, p] ⊗ a[n, p]‖²_F for each n, exactly, from a (N, P, D) and g (N, P, C).

    Temporaries come from `ws` after its first `skip` numbers (which the caller is
    using), at most `ws.limit` numbers at once, chunking the batch to fit.
    """
    n, positions, d_in = a.shape
    d_out = g.shape[2]
    out = torch.empty(n, dtype=g.dtype, device=g.device)
    if ghost_is_cheaper(positions, d_in, d_out):
        step = chunk_size(n, 2 * positions * positions, ws.limit)
        for s in range(0, n, step):
            m = min(step, n - s)
            _, aa, gg = ws.views(g, (skip,), (m, positions, positions), (m, positions, positions))
            torch.bmm(a[s:s + m], a[s:s + m].transpose(1, 2), out=aa)
            torch.bmm(g[s:s + m], g[s:s + m].transpose(1, 2), out=gg)
            out[s:s + m] = torch.linalg.vecdot(aa.flatten(1), gg.flatten(1))
    else:
        step = chunk_size(n, d_in * d_out, ws.limit)
        for s in range(0, n, step):
            m = min(step, n - s)
            if a[s:s + m].transpose(1, 2).is_contiguous():  # (D, P) rows: the faster orientation, G_nᵀ
                _, grads = ws.views(g, (skip,), (m, d_in, d_out))
                torch.bmm(a[s:s + m].transpose(1, 2), g[s:s + m], out=grads)
            else:
                _, grads = ws.views(g, (skip,), (m, d_out, d_in))
                torch.bmm(g[s:s + m].transpose(1, 2), a[s:s + m], out=grads)  # per-sample gradients
            out[s:s + m] = torch.linalg.vector_norm(grads.flatten(1), dim=1).square()
    return out


def linear_sqnorm(module: nn.Linear, a: torch.Tensor, g: torch.Tensor, trainable: frozenset[str],
                  ws: Workspace) -> torch.Tensor:
    """Per-sample ‖∂L/∂W‖² + ‖∂L/∂b‖² of a Linear layer from its input a and output gradient g.

    `trainable` names the parameters that count ("weight", "bias"): scoring freezes
    them all, so their own requires_grad no longer says.

    2-D inputs use ‖g aᵀ‖² = ‖g‖²‖a‖² (no outer product at all); inputs with more
    dimensions, (N, *, d), are flattened to (N, T, d) and go through `outer_sum_sqnorm`.
    """
    n = g.shape[0]
    if g.ndim == 2:
        g_sq = g.square().sum(1)
        out = a.square().sum(1) * g_sq if "weight" in trainable else torch.zeros_like(g_sq)
        if "bias" in trainable:
            out = out + g_sq
        return out
    a3 = a.reshape(n, -1, a.shape[-1])
    g3 = g.reshape(n, -1, g.shape[-1])
    out = outer_sum_sqnorm(a3, g3, ws) if "weight" in trainable else g.new_zeros(n)
    if "bias" in trainable:
        out = out + g3.sum(1).square().sum(1)
    return out


def linear_dots(module: nn.Linear, a: torch.Tensor, g: torch.Tensor, trainable: frozenset[str], vectors: Vectors,
                ws: Workspace) -> torch.Tensor:
    """Per-sample g_n · v_j of a Linear layer, (N, k), from its input a and output gradient g.

    ⟨Σ_p g_p a_pᵀ, V⟩ = Σ_p g_p · (V a_p): the layer's forward with V as its weight
    (one product the size of the layer's output per vector, never the per-sample
    gradients), dotted with g; the bias adds (Σ_p g_p) · v_b. Inputs (N, *, d) are
    flattened to (N, T, d) as in `linear_sqnorm`.
    """
    n = g.shape[0]
    a3 = a.reshape(n, -1, a.shape[-1])
    g3 = g.reshape(n, -1, g.shape[-1])
    g_sum = g3.sum(1) if "bias" in trainable else None
    cols = []
    for v in vectors:
        out = g.new_zeros(n)
        if "weight" in trainable:
            out += (torch.matmul(a3, v["weight"].t()) * g3).sum((1, 2))
        if g_sum is not None:
            out += g_sum @ v["bias"]
        cols.append(out)
    return stack_dots(cols, n, g)


register_norm_form(nn.Linear, linear_sqnorm)
register_dot_form(nn.Linear, linear_dots)
