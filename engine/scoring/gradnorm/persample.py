"""Per-sample gradient norms of a whole model from one forward and one backward pass.

How: forward hooks on every module that owns trainable parameters keep the
module's input and put a tensor hook on its output; the backward of the summed
loss then hands each hook ∂L/∂output for the whole batch, and the layer family's
closed form (registered per layer class, forms.py) turns (input, output gradient) into
each sample's squared gradient norm for that layer, right there, before the next
layer's gradient arrives. Layers without a closed form are kept for a torch.func
recomputation after the backward (generic.py). The per-layer squares add up to
‖∇θ L(θ, x_n, y_n)‖² of every sample n.

Given parameter-shaped vectors v_j, the same hooks also give g_n · v_j: each layer's
inner-product form (forms.py) turns its (input, output gradient) into the sample's
share, e.g. Σ_p g_p · (V a_p) for a Linear layer, a product the size of the layer's
output, so no per-sample gradient is formed for them either (influence.py's scores).

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

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, Self

import torch
from torch import nn
from torch.autograd.graph import GradientEdge, get_gradient_edge

from ...errors import ConfigError
from . import conv, groupnorm, linear, norm  # noqa: F401  (each registers its forms)
from .forms import dot_form, norm_form
from .generic import generic_products, generic_sqnorm
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

    `vectors` (parameter-shaped: dicts from the model's parameter names, as
    `named_parameters()` gives them, to tensors of those shapes, one entry per
    trainable parameter) add the per-sample inner products g_n · v_j from the same
    backward: after `finish()`, `dots` holds them, (N, k). Each layer's
    inner-product form (forms.py) adds its share, like the norms, so no per-sample
    gradient of the whole model is ever formed. `norms=False` skips the norms (then
    `finish()` gives zeros) when only the inner products are wanted.
    """

    def __init__(self, model: nn.Module, workspace_mb: float = DEFAULT_WORKSPACE_MB, per_layer: bool = False,
                 vectors: Sequence[Mapping[str, torch.Tensor]] = (), norms: bool = True):
        self.model = model
        self.workspace_mb = workspace_mb
        # For tests and debugging: each layer's (N,) squares (and (N, k) inner products) of the last batch, by layer
        # name, when per_layer.
        self.layer_sq: dict[str, torch.Tensor] | None = {} if per_layer else None
        self.layer_dots: dict[str, torch.Tensor] | None = {} if per_layer else None
        self.layers: dict[nn.Module, str] = {}
        self.trainable: dict[nn.Module, frozenset[str]] = {}  # recorded now: scoring freezes them all
        self.prefix: dict[nn.Module, str] = {}  # a layer's name as a parameter-name prefix ("" for the model)
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
            self.prefix[module] = f"{name}." if name else ""
        self.norms = norms
        self.vectors = [self._check_vector(v, j) for j, v in enumerate(vectors)]
        self._hooks: list[Any] = []
        self._frozen = None
        self.active = False
        self.sq: torch.Tensor | None = None
        self.dots: torch.Tensor | None = None
        self.roots: list[GradientEdge] = []  # where the backward ends when the input needs no gradient
        self._called: set[nn.Module] = set()
        self._deferred: list[tuple[nn.Module, tuple, dict, torch.Tensor, bool, bool]] = []
        self._workspace = 0  # numbers, from workspace_mb and the dtype
        self._scratch = Workspace(0)
        self._probes: dict[tuple, torch.Tensor] = {}
        self._own_vectors: dict[nn.Module, list[dict[str, torch.Tensor]]] = {}

    def _check_vector(self, v: Mapping[str, torch.Tensor], j: int) -> dict[str, torch.Tensor]:
        """Vector j, checked: a tensor of the right shape for every trainable parameter (others are ignored)."""
        params = dict(self.model.named_parameters())
        out = {}
        for module, own in self.trainable.items():
            for k in own:
                name = self.prefix[module] + k
                if name not in v:
                    raise ConfigError(f"vector {j} has no entry for trainable parameter {name!r}; give one tensor per "
                                      "trainable parameter, keyed by model.named_parameters() names")
                if tuple(v[name].shape) != tuple(params[name].shape):
                    raise ConfigError(f"vector {j}: {name!r} has shape {tuple(v[name].shape)}, the parameter "
                                      f"{tuple(params[name].shape)}")
                out[name] = v[name].detach()
        return out

    def _vectors_of(self, module: nn.Module, like: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """The vectors' entries for this layer's own trainable parameters, in the batch's dtype and device."""
        got = self._own_vectors.get(module)
        if got is None or any(t.dtype != like.dtype or t.device != like.device for v in got for t in v.values()):
            got = [{k: v[self.prefix[module] + k].to(dtype=like.dtype, device=like.device)
                    for k in self.trainable[module]} for v in self.vectors]
            self._own_vectors[module] = got
        return got

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
        self.dots = torch.zeros(n, len(self.vectors), dtype=dtype, device=device)
        if self.layer_sq is not None:
            self.layer_sq, self.layer_dots = {}, {}
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
        closed = norm_form(module) if first is not None and not kwargs else None
        dots = dot_form(module) if first is not None and not kwargs and self.vectors else None
        generic_norm, generic_dots = self.norms and closed is None, bool(self.vectors) and dots is None
        if generic_norm or generic_dots:
            self._deferred.append((module, args, kwargs, g, generic_norm, generic_dots))
        if not (closed or dots):
            return
        self._scratch.limit = max(self._workspace, g.numel())
        if self.norms and closed is not None:
            self._add(name, closed(module, first, g, self.trainable[module], self._scratch))
        if dots is not None:
            self._add_dots(name, dots(module, first, g, self.trainable[module], self._vectors_of(module, g),
                                      self._scratch))

    def _add(self, name: str, sq: torch.Tensor) -> None:
        self.sq += sq
        if self.layer_sq is not None:
            self.layer_sq[name] = sq.detach().clone()

    def _add_dots(self, name: str, dots: torch.Tensor) -> None:
        self.dots += dots
        if self.layer_dots is not None:
            self.layer_dots[name] = dots.detach().clone()

    def finish(self) -> torch.Tensor:
        """After the backward: the batch's per-sample squared gradient norms, shape (N,) (zeros with norms=False);
        the inner products with the vectors are in `dots`, (N, k)."""
        self.active = False  # the generic recomputation runs module forwards: keep the hooks quiet
        with torch.no_grad():  # torch.func.grad differentiates inside regardless
            for module, args, kwargs, g, norm, dots in self._deferred:
                limit = max(self._workspace, g.numel())
                if not dots:  # the norms alone: generic_sqnorm, as before there were inner products
                    self._add(self.layers[module], generic_sqnorm(module, args, kwargs, g, self.trainable[module],
                                                                  limit))
                    continue
                sq, products = generic_products(module, args, kwargs, g, self.trainable[module], limit,
                                                self._vectors_of(module, g), norms=norm)
                if sq is not None:
                    self._add(self.layers[module], sq)
                self._add_dots(self.layers[module], products)
        self._deferred = []
        self.roots = []
        return self.sq
