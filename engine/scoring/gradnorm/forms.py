"""The form registries: a layer class -> the closed form of its per-sample squared gradient norm, and of its
per-sample gradient inner products with given parameter-shaped vectors.

Like opacus' grad samplers, one signature for every layer family:
`fn(module, input, output_grad, trainable, workspace) -> (N,) squared norms`, where
`input` is the layer's input and `output_grad` ∂L/∂output for the whole batch,
`trainable` the names of the module's own parameters that count, and `workspace`
scratch memory (`linear.Workspace`) a form may use to bound its temporaries.
An inner-product form takes the vectors too:
`fn(module, input, output_grad, trainable, vectors, workspace) -> (N, k)`, `vectors`
a list of k dicts from the module's own trainable parameter names to tensors of
their shapes, and returns g_n · v_j for every sample n and vector j, where g_n is
the sample's gradient w.r.t. those parameters.
Forms match the exact class (a subclass may override forward, so it takes the
exact torch.func fallback in generic.py unless registered itself).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .linear import Workspace

NormForm = Callable[[nn.Module, torch.Tensor, torch.Tensor, frozenset[str], "Workspace"], torch.Tensor]
NORM_FORMS: dict[type[nn.Module], NormForm] = {}
Vectors = list[dict[str, torch.Tensor]]  # k parameter-shaped vectors, each: own parameter name -> tensor
DotForm = Callable[[nn.Module, torch.Tensor, torch.Tensor, frozenset[str], Vectors, "Workspace"], torch.Tensor]
DOT_FORMS: dict[type[nn.Module], DotForm] = {}


def register_norm_form(layer_class: type[nn.Module], fn: NormForm | None = None):
    """Use `fn` for every layer of exactly `layer_class` (also as a decorator: `@register_norm_form(MyLayer)`).

    The form must return each sample's squared norm of the gradient w.r.t. the
    layer's own trainable parameters, exactly; anything else makes the scores wrong,
    so test it against `torch.func` (tests/engine/scoring/test_scoring.py shows how).
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, nn.Module)):
        raise TypeError(f"register_norm_form needs an nn.Module subclass, got {layer_class!r}")

    def add(form: NormForm) -> NormForm:
        if not callable(form):
            raise TypeError(f"the norm form for {layer_class.__name__} must be callable")
        NORM_FORMS[layer_class] = form
        return form

    return add if fn is None else add(fn)


def norm_form(module: nn.Module) -> NormForm | None:
    """The registered form of this module's exact class, or None (the generic fallback)."""
    return NORM_FORMS.get(type(module))


def register_dot_form(layer_class: type[nn.Module], fn: DotForm | None = None):
    """Use `fn` for the per-sample gradient inner products of every layer of exactly `layer_class` (also as a
    decorator). Without one, a layer's inner products take the exact torch.func fallback (generic.py).

    The form must return g_n · v_j exactly, (N, k), for the k `vectors`; test it against a
    per-sample autograd loop as tests/engine/scoring/test_inner_products.py does.
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, nn.Module)):
        raise TypeError(f"register_dot_form needs an nn.Module subclass, got {layer_class!r}")

    def add(form: DotForm) -> DotForm:
        if not callable(form):
            raise TypeError(f"the inner-product form for {layer_class.__name__} must be callable")
        DOT_FORMS[layer_class] = form
        return form

    return add if fn is None else add(fn)


def dot_form(module: nn.Module) -> DotForm | None:
    """The registered inner-product form of this module's exact class, or None (the generic fallback)."""
    return DOT_FORMS.get(type(module))


def stack_dots(parts: list[torch.Tensor], n: int, like: torch.Tensor) -> torch.Tensor:
    """(N, k) from k per-vector (N,) columns (N × 0 when there are no vectors)."""
    return torch.stack(parts, 1) if parts else like.new_zeros(n, 0)
