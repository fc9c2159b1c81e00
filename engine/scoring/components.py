"""Components of the scoring pass: each per-batch quantity, built-in or a plugin's, in one begin/add/finish shape.

Why one shape: the pass (batch.py) does the forward, and the backward only when a
component needs a gradient; everything it yields per batch goes to every component
as one `PassBatch`. A component says what it needs (`needs`: "param_norms",
"input_norms", "features"), allocates its device buffer in `begin(n, dtype,
device)`, fills its rows in `add(batch)` and turns them into host arrays once, in
`finish()`. So logits and predictions, the exact ‖∇θL‖ and ‖∂L/∂x‖, embeddings,
gradient embeddings and any plugin scorer are handled alike, and a plain
`fn(model, x, y, logits, **options)` scorer is a `FunctionScore` around it.
Components are made by name from `COMPONENTS` (registry.py), so a plugin can add one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Ref
from .gradembed import DEFAULT_GRADIENT_MB, GradientEmbeddings
from .registry import COMPONENTS, SURROGATE_OPTIONS, Scorer

PARAM_NORMS, INPUT_NORMS, FEATURES = "param_norms", "input_norms", "features"


@dataclass
class PassBatch:
    """One batch of the scoring pass as every component sees it: detached device tensors, rows start:stop."""

    start: int
    stop: int
    model: nn.Module  # in eval mode, parameters frozen
    x: torch.Tensor  # the normalised input, in the model's layout
    y: torch.Tensor
    logits: torch.Tensor
    param_norms: torch.Tensor | None = None  # ‖∇θ L(x_n, y_n)‖ per sample, when a component needs it
    input_norms: torch.Tensor | None = None  # ‖∂L/∂x_n‖ per sample, when a component needs it
    features: torch.Tensor | None = None  # penultimate features (n, d), when a component needs them


class Component:
    """The shape every component has; `needs` lists what the pass must compute for it."""

    needs: frozenset[str] = frozenset()

    def begin(self, n: int, dtype: torch.dtype, device: torch.device) -> None:
        raise NotImplementedError

    def add(self, batch: PassBatch) -> None:
        raise NotImplementedError

    def finish(self) -> Any:
        raise NotImplementedError


class PerSample(Component):
    """A component with one value per sample, in the model's dtype, kept on the device until `finish`."""

    def begin(self, n: int, dtype: torch.dtype, device: torch.device) -> None:
        self.out = torch.empty(n, dtype=dtype, device=device)

    def finish(self) -> np.ndarray:
        return self.out.cpu().numpy()


class ParamGradNorm(PerSample):
    """The exact per-sample ‖∇θ L‖₂ over every trainable parameter (gradnorm/persample.py does the work)."""

    needs = frozenset({PARAM_NORMS})

    def add(self, batch: PassBatch) -> None:
        self.out[batch.start:batch.stop] = batch.param_norms


class InputGradNorm(PerSample):
    """‖∂L/∂x‖₂ w.r.t. the normalised input, per sample."""

    needs = frozenset({INPUT_NORMS})

    def add(self, batch: PassBatch) -> None:
        self.out[batch.start:batch.stop] = batch.input_norms


class FunctionScore(PerSample):
    """A plain scorer `fn(model, x, y, logits, **options) -> (n,)`, called with grad mode on (it may
    differentiate w.r.t. x on its own) and its options as keywords."""

    def __init__(self, fn: Any, **options: Any):
        self.fn = fn.load() if isinstance(fn, Ref) else fn
        self.options = options

    def add(self, batch: PassBatch) -> None:
        with torch.enable_grad():
            values = self.fn(batch.model, batch.x, batch.y, batch.logits, **self.options)
        self.out[batch.start:batch.stop] = values.detach().reshape(-1)


class Predictions(Component):
    """The argmax of the logits per sample."""

    def begin(self, n: int, dtype: torch.dtype, device: torch.device) -> None:
        self.out = torch.empty(n, dtype=torch.long, device=device)

    def add(self, batch: PassBatch) -> None:
        self.out[batch.start:batch.stop] = batch.logits.argmax(1)

    def finish(self) -> np.ndarray:
        return self.out.cpu().numpy()


class Embeddings(Component):
    """The penultimate features (n, d), allocated at the first batch (d from the model)."""

    needs = frozenset({FEATURES})

    def begin(self, n: int, dtype: torch.dtype, device: torch.device) -> None:
        self.n, self.device, self.out = n, device, None

    def add(self, batch: PassBatch) -> None:
        features = batch.features
        if self.out is None:
            self.out = torch.empty(self.n, features.shape[1], dtype=features.dtype, device=self.device)
        self.out[batch.start:batch.stop] = features

    def finish(self) -> np.ndarray | None:
        return None if self.out is None else self.out.cpu().numpy()


class GradientEmbeddingsOf(Component):
    """Exact last-layer per-sample gradients, in `dtype`, projected to fit `mb` (gradembed.py); `finish` gives
    (array, projection)."""

    needs = frozenset({FEATURES})

    def __init__(self, dtype: str = "float32", mb: float = DEFAULT_GRADIENT_MB):
        self.dtype, self.mb = dtype, mb

    def begin(self, n: int, dtype: torch.dtype, device: torch.device) -> None:
        self.gathered = GradientEmbeddings(n, device, self.dtype, self.mb)

    def add(self, batch: PassBatch) -> None:
        self.gathered.add(batch.start, batch.features, batch.logits, batch.y)

    def finish(self) -> tuple[np.ndarray | None, str]:
        return self.gathered.numpy(), self.gathered.projection


def make_component(name: str, **options: Any) -> Component:
    """The registered component `name`, made with `options`."""
    return COMPONENTS.check(name)(**options)


def component_for(scorer: Scorer, options: dict[str, Any] | None = None) -> Component:
    """The component that computes a batch scorer, made with its resolved options (the surrogate run's own,
    `inits` and `epoch`, left out): its registered component, or its function wrapped."""
    if scorer.kind != "batch":
        raise ConfigError(f"scorer {scorer.name!r} does not score a trained model batch by batch; "
                          "compute it with compute_scores")
    resolved = {k: v for k, v in scorer.resolve(options).items() if k not in SURROGATE_OPTIONS}
    if scorer.component:
        return make_component(scorer.component, **resolved)
    return make_component("function", fn=scorer.fn, **resolved)
