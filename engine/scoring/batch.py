"""The scoring pass: every requested per-model score of one surrogate from one sweep over the data.

Per batch: one forward, and (only when a component needs a gradient) one
backward of the summed loss with the parameters frozen. From that single pass
come the loss, the single-model EL2N, ‖∂L/∂x‖, the exact per-sample ‖∇θ L‖
(persample.py), any user scorer, the predictions and, when asked, the penultimate
embeddings and gradient embeddings: each is a component (components.py) that the
pass hands every batch. Results stay on the device until the end of the pass
(one host sync per output).

The model is put in eval mode (BatchNorm running statistics: samples stay
independent) and in the trainer's channels_last layout, and computes in the dtype
of its parameters (float32 normally; float64 when the caller made it so, as the
exactness tests do). `input_grad_norm` is taken w.r.t. the normalised input tensor
the model sees, ((x/255 − mean)/std), not the raw pixels: that is the input of
f_θ, and a per-channel rescaling of the raw-pixel gradient would only reweight
channels of colour data sets.

TF32 is off during the pass: PyTorch lets cuDNN round float32 convolutions to
TF32 (10-bit mantissa) by default on Ampere and newer GPUs, which would make the
exact norms exact only to about 1e-3. Training keeps its own settings.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..cancel import CancelToken
from ..cancel import check as check_cancel
from ..data.dataset import Dataset
from ..errors import ConfigError
from ..store.events import BatchProgress, EventCallback
from ..trainer import as_index, prepare_model, to_model_layout
from .components import FEATURES, INPUT_NORMS, PARAM_NORMS, Component, PassBatch, component_for, make_component
from .gradembed import DEFAULT_GRADIENT_MB
from .gradnorm.conv import fold_input_grad_hook, input_grad_by_fold
from .gradnorm.persample import DEFAULT_WORKSPACE_MB, PerSampleGradNorms, frozen_params
from .registry import Scorer, resolve_scorers


@dataclass
class ModelScores:
    """One surrogate's scores over the training samples (aligned with dataset indices)."""

    scores: dict[str, np.ndarray]
    predictions: np.ndarray
    embeddings: np.ndarray | None
    seconds: float
    gradients: np.ndarray | None = None  # last-layer gradient embeddings (gradembed.py), when asked
    gradient_projection: str = "none"


def model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


class _Embeddings:
    """Captures the penultimate features: the input of `model.head` when there is one, else `model.embed(x)`."""

    def __init__(self, model: nn.Module, enabled: bool):
        self.model, self.enabled, self.value = model, enabled, None
        self.hook = None
        head = getattr(model, "head", None)
        if enabled and isinstance(head, nn.Module):
            self.hook = head.register_forward_pre_hook(self._capture)
        elif enabled and not callable(getattr(model, "embed", None)):
            raise ConfigError(f"embeddings asked for, but {type(model).__name__} has neither a `head` layer nor "
                              "an `embed(x)` method giving its penultimate features")

    def _capture(self, module: nn.Module, args: tuple) -> None:
        self.value = args[0].detach().flatten(1)

    def get(self, x: torch.Tensor) -> torch.Tensor | None:
        if not self.enabled:
            return None
        if self.hook is None:
            with torch.no_grad():
                return self.model.embed(x).flatten(1)
        value, self.value = self.value, None
        return value

    def close(self) -> None:
        if self.hook is not None:
            self.hook.remove()


@contextmanager
def ieee_float32() -> Iterator[None]:
    """Full float32 in cuDNN convolutions and CUDA matmuls inside, the previous settings restored after."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is None or not hasattr(conv, "fp32_precision"):  # torch before 2.9: the legacy flags
        flags, attr, strict = [torch.backends.cudnn, torch.backends.cuda.matmul], "allow_tf32", False
    else:  # mixing the two APIs is an error in newer torch, so only the new one here
        flags, attr, strict = [conv, torch.backends.cuda.matmul], "fp32_precision", "ieee"
    saved = [getattr(f, attr) for f in flags]
    for f in flags:
        setattr(f, attr, strict)
    try:
        yield
    finally:
        for f, value in zip(flags, saved):
            setattr(f, attr, value)


class CurrentInput:
    """The batch the pass is differentiating, for the conv layers that route its input gradient via a fold."""

    def __init__(self) -> None:
        self.x: torch.Tensor | None = None

    def __call__(self) -> torch.Tensor | None:
        return self.x


class _Forward:
    """The pass's forward (and backward, when a component needs a gradient) of one batch."""

    def __init__(self, model: nn.Module, needs: set[str], workspace_mb: float):
        self.model = model
        self.params, self.input = PARAM_NORMS in needs, INPUT_NORMS in needs
        self.norms = PerSampleGradNorms(model, workspace_mb) if self.params else None  # refuses before any hook
        self.capture = _Embeddings(model, FEATURES in needs)
        self.current = CurrentInput()
        self.folds = [m.register_forward_hook(fold_input_grad_hook(self.current), prepend=True)
                      for m in model.modules() if self.input and input_grad_by_fold(m)]

    def frozen(self) -> AbstractContextManager:
        """Parameters frozen for the pass (and the per-sample norm hooks on, when asked)."""
        return self.norms if self.norms is not None else frozen_params(self.model)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, start: int) -> PassBatch:
        param_norms = input_norms = None
        if not (self.params or self.input):
            with torch.no_grad():
                logits = self.model(x)
        else:
            if self.input:
                x.requires_grad_(True)
                self.current.x = x
            if self.params:
                self.norms.begin(len(y), x.dtype, x.device)
            with torch.enable_grad():
                logits = self.model(x)
                loss = F.cross_entropy(logits, y, reduction="sum")
                wrt = ([x] if self.input else []) + (self.norms.roots if self.params else [])
                grads = torch.autograd.grad(loss, wrt) if wrt else ()
            input_norms = torch.linalg.vector_norm(grads[0].flatten(1), dim=1) if self.input else None
            param_norms = self.norms.finish().sqrt() if self.params else None
            del grads, loss
        logits, x = logits.detach(), x.detach()
        return PassBatch(start, start + len(y), self.model, x, y, logits, param_norms, input_norms,
                         self.capture.get(x))

    def close(self) -> None:
        for hook in self.folds:
            hook.remove()
        self.capture.close()


def scoring_pass(model: nn.Module, dataset: Dataset, components: list[Component], batch_size: int = 256,
                 indices: np.ndarray | torch.Tensor | None = None, workspace_mb: float = DEFAULT_WORKSPACE_MB,
                 on_event: EventCallback | None = None, epoch: int = 0, epochs: int = 0,
                 cancel: CancelToken | None = None) -> list[Any]:
    """One sweep over the training samples `indices` (default: all): every component gets every batch; what
    each `finish()`es, in order. `cancel` is polled per batch; `epoch`/`epochs` only label BatchProgress."""
    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size} must be at least 1")
    device = dataset.device
    model = prepare_model(model, device)
    dtype = model_dtype(model)
    index = as_index(indices, len(dataset), device)
    n = len(index)
    for component in components:
        component.begin(n, dtype, device)
    forward = _Forward(model, set().union(*(c.needs for c in components)), workspace_mb)
    was_training = model.training
    model.eval()
    batches = max(1, -(-n // batch_size))
    last_report = time.perf_counter()
    try:
        with forward.frozen(), ieee_float32():
            for b, (idx, images) in enumerate(dataset.batches(index, batch_size)):  # on the device or streamed
                check_cancel(cancel)
                batch = forward(to_model_layout(dataset.normalize(images, dtype)), dataset.y_train[idx], b * batch_size)
                for component in components:
                    component.add(batch)
                now = time.perf_counter()
                if on_event is not None and (now - last_report > 0.2 or b == batches - 1):
                    last_report = now
                    on_event(BatchProgress(epoch=epoch, epochs=epochs, batch=b + 1, batches=batches))
    finally:
        forward.close()
        model.train(was_training)
    return [component.finish() for component in components]


def score_model(model: nn.Module, dataset: Dataset, scorers: Iterable[str | Scorer] | str,
                batch_size: int = 256, indices: np.ndarray | torch.Tensor | None = None, embeddings: bool = False,
                on_event: EventCallback | None = None, workspace_mb: float = DEFAULT_WORKSPACE_MB, epoch: int = 0,
                epochs: int = 0, gradients: bool = False, gradient_dtype: str = "float32",
                gradient_mb: float = DEFAULT_GRADIENT_MB, options: dict[str, dict[str, Any]] | None = None,
                cancel: CancelToken | None = None) -> ModelScores:
    """Score the training samples `indices` (default: all) of `dataset` with one model, in one pass.

    `scorers` are batch scorers (not `random` or `forgetting`, which need no model or
    a training run: see `compute_scores`); `options` maps a scorer to its options
    (passed to its function as keywords; defaults for the rest). Returns arrays in the
    model's dtype. `epoch`/`epochs` only label the BatchProgress events. `gradients`
    also gathers the last-layer gradient embeddings (gradembed.py) from the same forward.
    """
    if not isinstance(scorers, str):
        scorers = [s.name if isinstance(s, Scorer) else s for s in scorers]
    chosen = resolve_scorers(scorers) if scorers else []  # none: predictions (and embeddings) only
    wrong = [s.name for s in chosen if s.kind != "batch"]
    if wrong:
        raise ConfigError(f"scorer(s) {', '.join(wrong)} do not score a trained model batch by batch; "
                          "compute them with compute_scores")
    start = time.perf_counter()
    components = [component_for(s, (options or {}).get(s.name)) for s in chosen]
    components.append(make_component("predictions"))
    if embeddings:
        components.append(make_component("embeddings"))
    if gradients:
        components.append(make_component("gradient_embeddings", dtype=gradient_dtype, mb=gradient_mb))
    out = scoring_pass(model, dataset, components, batch_size, indices, workspace_mb, on_event, epoch, epochs, cancel)
    result = ModelScores(scores=dict(zip((s.name for s in chosen), out)), predictions=out[len(chosen)],
                         embeddings=out[len(chosen) + 1] if embeddings else None,
                         seconds=time.perf_counter() - start)
    if gradients:
        result.gradients, result.gradient_projection = out[-1]
    return result
