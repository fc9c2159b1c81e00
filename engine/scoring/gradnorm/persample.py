"""Per-sample gradient norms of a whole model from one forward and one backward pass.

How: forward hooks on every module that owns trainable parameters keep the
module's input and put a tensor hook on its output; the backward of the summed
loss then hands each hook ∂L/∂output for the whole batch, and the layer family's
closed form (registered per layer class, forms.py) turns (input, output gradient) into
each sample's squared gradient norm for that layer, right there, before the next
layer's gradient arrives. Layers without a closed form are kept for a torch.func
recomputation after the backward (generic.py). The per-layer squares add up to
‖∇θ L(θ, x_n, y_n)‖² of every sample n.

Why it is cheap: the parameters are frozen (requires_grad=False) while scoring,
so the backward computes activation gradients only, never the batch's weight
gradients; what it does compute per layer is about what a training step's
weight-gradient would cost. Unless ‖∂L/∂x‖ is asked for too, the input does not
require grad and the backward ends at the outputs of the first layers (put into
the graph as they are by a no-op autograd function), so no input gradient is
computed and nothing is kept alive for it. No per-sample Python
loop, and never the per-sample gradients of the whole model at once, at most one
layer's for one chunk of samples.

Why it is exact: the model is in eval mode, so BatchNorm uses its running
statistics and the gradient of the summed loss, split by sample, is each
sample's own gradient. A module called twice in one forward (shared weights)
would need the per-sample gradients of its uses added before squaring; it is
refused with a clear error rather than answered wrongly.

Tensor hooks registered before an in-place op on a layer's output receive the
gradient w.r.t. the value the layer produced, so `ReLU(inplace=True)` after a
layer is fine; a layer's input changed in place after the layer read it is
detected (version counter) and refused.

Parameters used outside their module's forward (e.g. `F.linear(x, self.a.weight)`
in a parent's forward) are not seen by the hooks; such models are not supported.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, Self

import torch
from torch import nn
from torch.autograd.graph import GradientEdge, get_gradient_edge

from ...errors import ConfigError
from . import conv, groupnorm, linear, norm  # noqa: F401  (each registers its forms)
from .forms import norm_form
from .generic import generic_sqnorm
from .linear import Workspace
from .norm import BATCHNORMS, check_batchnorm

# Temporary memory one layer's per-sample computation may use, at least: the batch is cut into chunks to fit.
# A layer may always use as much as its own output gradient takes (so large batches on a GPU are not cut
# finely); with the default, scoring `cnn` at batch 256 peaks at about 1.7x a training step's memory.
DEFAULT_WORKSPACE_MB = 16.0

@contextmanager
def frozen_params(model: nn.Module) -> Iterator[nn.Module]:
    """Parameters set to requires_grad=False inside, restored after: backward then skips weight gradients."""
    saved = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in saved:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


class _GraphStart(torch.autograd.Function):
    """Puts a tensor that needs no gradient into the graph as it is: same tensor, no copy, no data touched.

    The backward ends at its output (a gradient edge passed to autograd.grad), so its
    own backward never runs. `mark_dirty` lets it return its input itself rather than
    a view, so in-place ops after the layer stay legal.
    """

    @staticmethod
    def forward(ctx, out: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
        ctx.mark_dirty(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None


class PerSampleGradNorms:
    """Context manager: inside, each `begin(n)` … forward … backward … `finish()` gives (N,) squared norms.

    The model must be in eval mode. `workspace_mb` bounds the temporary memory of
    one layer's per-sample computation (the batch is split into chunks to fit).
    """

    def __init__(self, model: nn.Module, workspace_mb: float = DEFAULT_WORKSPACE_MB, per_layer: bool = False):
        self.model = model
        self.workspace_mb = workspace_mb
        # For tests and debugging: each layer's (N,) squares of the last batch, by layer name, when per_layer.
        self.layer_sq: dict[str, torch.Tensor] | None = {} if per_layer else None
        self.layers: dict[nn.Module, str] = {}
        self.trainable: dict[nn.Module, frozenset[str]] = {}  # recorded now: scoring freezes them all
        owner: dict[int, str] = {}
        for name, module in model.named_modules():
            own = {k: p for k, p in module.named_parameters(recurse=False) if p.requires_grad}
            if not own:
                continue
            self.trainable[module] = frozenset(own)
            for p in own.values():
                if id(p) in owner:
                    raise ConfigError(f"layers {owner[id(p)]!r} and {name!r} share a parameter (tied weights); exact "
                                      "per-sample gradient norms need each parameter owned by one layer")
                owner[id(p)] = name
            if type(module) in BATCHNORMS:
                check_batchnorm(name, module)
            self.layers[module] = name or type(model).__name__
        self._hooks: list[Any] = []
        self._frozen = None
        self.active = False
        self.sq: torch.Tensor | None = None
        self.roots: list[GradientEdge] = []  # where the backward ends when the input needs no gradient
        self._called: set[nn.Module] = set()
        self._deferred: list[tuple[nn.Module, tuple, dict, torch.Tensor]] = []
        self._workspace = 0  # numbers, from workspace_mb and the dtype
        self._scratch = Workspace(0)
        self._probes: dict[tuple, torch.Tensor] = {}

    def __enter__(self) -> Self:
        if any(m.training for m in self.model.modules()):
            raise ConfigError("per-sample gradient norms need the model in eval mode (BatchNorm with running "
                              "statistics); call model.eval() first")
        self._frozen = frozen_params(self.model)
        self._frozen.__enter__()
        for module in self.layers:
            self._hooks.append(module.register_forward_hook(self._forward_hook, with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self.active = False
        self.roots, self._deferred, self.sq = [], [], None
        if self._frozen is not None:
            self._frozen.__exit__(*exc)
            self._frozen = None

    def begin(self, n: int, dtype: torch.dtype, device: torch.device) -> None:
        """Start a batch of n samples."""
        self.sq = torch.zeros(n, dtype=dtype, device=device)
        if self.layer_sq is not None:
            self.layer_sq = {}
        self.roots, self._deferred = [], []
        self._called.clear()
        self._workspace = int(self.workspace_mb * 2 ** 20) // (torch.finfo(dtype).bits // 8)  # numbers
        self.active = True

    def _forward_hook(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        if not self.active:
            return None
        name = self.layers[module]
        if module in self._called:
            raise ConfigError(f"layer {name!r} is called more than once in one forward pass (a reused module shares "
                              "its weights between calls); exact per-sample gradient norms need each module with "
                              "parameters used once: give each use its own module")
        self._called.add(module)
        if not isinstance(output, torch.Tensor):
            raise ConfigError(f"layer {name!r} returns {type(output).__name__}, not a tensor; per-sample gradient "
                              "norms support layers with parameters that return one tensor")
        replaced = None
        if not output.requires_grad:  # nothing upstream needs a gradient: end the backward here
            output = replaced = _GraphStart.apply(output, self._probe(output))
            self.roots.append(get_gradient_edge(output))  # backward stops at it, and keeps nothing alive
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        version = first._version if first is not None else 0
        output.register_hook(partial(self._on_grad, module, name, args, kwargs, first, version))
        return replaced

    def _probe(self, like: torch.Tensor) -> torch.Tensor:
        """A scalar that requires grad, so that `_GraphStart`'s output does."""
        key = (like.dtype, like.device)
        if key not in self._probes:
            self._probes[key] = torch.zeros((), dtype=like.dtype, device=like.device, requires_grad=True)
        return self._probes[key]

    def _on_grad(self, module: nn.Module, name: str, args: tuple, kwargs: dict, first: torch.Tensor | None,
                 version: int, g: torch.Tensor) -> None:
        if first is not None and first._version != version:
            raise ConfigError(f"the input of layer {name!r} was modified in place after the layer read it; "
                              "per-sample gradient norms need it unchanged (use an out-of-place op)")
        closed = norm_form(module)
        if closed is None or first is None or kwargs:
            self._deferred.append((module, args, kwargs, g))
            return
        self._scratch.limit = max(self._workspace, g.numel())
        self._add(name, closed(module, first, g, self.trainable[module], self._scratch))
        return

    def _add(self, name: str, sq: torch.Tensor) -> None:
        self.sq += sq
        if self.layer_sq is not None:
            self.layer_sq[name] = sq.detach().clone()

    def finish(self) -> torch.Tensor:
        """After the backward: the batch's per-sample squared gradient norms, shape (N,)."""
        self.active = False  # the generic recomputation runs module forwards: keep the hooks quiet
        with torch.no_grad():  # torch.func.grad differentiates inside regardless
            for module, args, kwargs, g in self._deferred:
                self._add(self.layers[module], generic_sqnorm(module, args, kwargs, g, self.trainable[module],
                                                              max(self._workspace, g.numel())))
        self._deferred = []
        self.roots = []
        return self.sq
