"""Exact per-sample squared gradient norms (and inner products with given vectors) of any other layer with
trainable parameters.

For a layer no closed form covers (Embedding, a subclass of a norm layer, a user's own
module holding an `nn.Parameter` …), the scoring pass keeps the layer's inputs and
the gradient of the loss w.r.t. its output, then recomputes the layer alone per
sample with torch.func: the vector-Jacobian product of the layer's function of its
own parameters with that output gradient, vmapped over the batch. This is exact
(it is the layer's true per-sample parameter gradient) and touches one layer at a
time, in chunks of samples, so memory stays bounded; it is slower than the
closed forms, which is why the common layers have their own.

Tensors among the layer's inputs whose first dimension is the batch size are
taken as per-sample inputs; everything else is passed as it is.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .linear import chunk_size


def generic_sqnorm(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], g: torch.Tensor,
                   trainable: frozenset[str], limit: int) -> torch.Tensor:
    """Per-sample squared norm of the gradient of `module`'s own trainable parameters."""
    sq, _ = generic_products(module, args, kwargs, g, trainable, limit)
    return sq


def generic_products(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], g: torch.Tensor,
                     trainable: frozenset[str], limit: int, vectors: list[dict[str, torch.Tensor]] | None = None,
                     norms: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-sample squared norms (N,) (None unless `norms`) and inner products with `vectors` (N, k) (None without
    vectors) of the gradient of `module`'s own trainable parameters, from one torch.func recomputation."""
    from torch.func import functional_call, grad, vmap

    params = {k: p.detach() for k, p in module.named_parameters(recurse=False) if k in trainable}
    n = g.shape[0]
    keys = list(kwargs)
    inputs = [v.detach() if isinstance(v, torch.Tensor) else v for v in list(args) + [kwargs[k] for k in keys]]
    g = g.detach()
    batched = [isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == n for v in inputs]

    def inner(p: dict[str, torch.Tensor], g_i: torch.Tensor, *values: Any) -> torch.Tensor:
        values = [v.unsqueeze(0) if b else v for v, b in zip(values, batched)]
        out = functional_call(module, p, tuple(values[:len(args)]), dict(zip(keys, values[len(args):])))
        return (out * g_i.unsqueeze(0)).sum()  # <f(p, x_i), g_i>: its gradient in p is the vjp

    per_sample = vmap(grad(inner), in_dims=(None, 0, *[0 if b else None for b in batched]))
    numel = sum(p.numel() for p in params.values())
    step = chunk_size(n, numel, limit)
    sq = g.new_zeros(n) if norms else None
    dots = g.new_zeros(n, len(vectors)) if vectors else None
    for s in range(0, n, step):
        chunk = [v[s:s + step] if b else v for v, b in zip(inputs, batched)]
        _accumulate(per_sample(params, g[s:s + step], *chunk), slice(s, s + step), sq, dots, vectors or [])
    return sq, dots


def _accumulate(grads: dict[str, torch.Tensor], rows: slice, sq: torch.Tensor | None, dots: torch.Tensor | None,
                vectors: list[dict[str, torch.Tensor]]) -> None:
    """Add one chunk's per-sample gradients (name -> (m, *shape)) to the squared norms and the inner products."""
    for name, value in grads.items():
        flat = value.reshape(value.shape[0], -1)
        if sq is not None:
            sq[rows] += flat.square().sum(1)
        for j, v in enumerate(vectors):
            dots[rows, j] += flat @ v[name].reshape(-1).to(flat.dtype)
