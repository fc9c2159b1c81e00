"""The scoring pass: every requested per-model score of one surrogate from one sweep over the data.

Per batch: one forward, and (only when a gradient score is asked for) one
backward of the summed loss with the parameters frozen. From that single pass
come the loss, the single-model EL2N, ‖∂L/∂x‖, the exact per-sample ‖∇θ L‖
(persample.py), any user scorer, the predictions and, when asked, the penultimate
embeddings. Results stay on the device until the end of the pass (one host sync).

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
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data.dataset import Dataset
from ..errors import ConfigError
from ..store.events import BatchProgress, EventCallback
from ..trainer import prepare_model, to_model_layout
from .gradembed import DEFAULT_GRADIENT_MB, GradientEmbeddings
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


def score_model(model: nn.Module, dataset: Dataset, scorers: Iterable[str | Scorer] | str,
                batch_size: int = 256, indices: np.ndarray | torch.Tensor | None = None, embeddings: bool = False,
                on_event: EventCallback | None = None, workspace_mb: float = DEFAULT_WORKSPACE_MB, epoch: int = 0,
                epochs: int = 0, gradients: bool = False, gradient_dtype: str = "float32",
                gradient_mb: float = DEFAULT_GRADIENT_MB) -> ModelScores:
    """Score the training samples `indices` (default: all) of `dataset` with one model, in one pass.

    `scorers` are batch scorers (not `random` or `forgetting`, which need no model or
    a training run: see `compute_scores`). Returns arrays in the model's dtype.
    `epoch`/`epochs` only label the BatchProgress events. `gradients` also gathers the
    last-layer gradient embeddings (gradembed.py) from the same forward.
    """
    if not isinstance(scorers, str):
        scorers = [s.name if isinstance(s, Scorer) else s for s in scorers]
    chosen = resolve_scorers(scorers) if scorers else []  # none: predictions (and embeddings) only
    wrong = [s.name for s in chosen if s.kind != "batch"]
    if wrong:
        raise ConfigError(f"scorer(s) {', '.join(wrong)} do not score a trained model batch by batch; "
                          "compute them with compute_scores")
    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size} must be at least 1")
    device = dataset.device
    model = prepare_model(model, device)
    dtype = model_dtype(model)
    index = (torch.arange(len(dataset), device=device) if indices is None
             else torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices,
                                  dtype=torch.long).to(device))
    n = len(index)
    need_params = any(s.needs_param_grads for s in chosen)
    need_input = any(s.needs_input_grad for s in chosen)
    out = {s.name: torch.empty(n, dtype=dtype, device=device) for s in chosen}
    predictions = torch.empty(n, dtype=torch.long, device=device)
    emb_out: torch.Tensor | None = None
    capture = _Embeddings(model, embeddings or gradients)
    grad_out = GradientEmbeddings(n, device, gradient_dtype, gradient_mb) if gradients else None
    was_training = model.training
    model.eval()
    batches = max(1, -(-n // batch_size))
    start_time = last_report = time.perf_counter()
    norms = PerSampleGradNorms(model, workspace_mb) if need_params else frozen_params(model)
    current = {"x": None}
    folds = [m.register_forward_hook(fold_input_grad_hook(lambda: current["x"]), prepend=True)
             for m in model.modules() if need_input and input_grad_by_fold(m)]
    try:
        with norms, ieee_float32():
            for b, (idx, images) in enumerate(dataset.batches(index, batch_size)):  # on the device or streamed
                start, stop = b * batch_size, b * batch_size + len(idx)
                x = to_model_layout(dataset.normalize(images, dtype))
                y = dataset.y_train[idx]
                if need_params or need_input:
                    if need_input:
                        x.requires_grad_(True)
                        current["x"] = x
                    if need_params:
                        norms.begin(len(y), dtype, device)
                    with torch.enable_grad():
                        logits = model(x)
                        loss = F.cross_entropy(logits, y, reduction="sum")
                        wrt = ([x] if need_input else []) + (norms.roots if need_params else [])
                        grads = torch.autograd.grad(loss, wrt) if wrt else ()
                    input_norm = torch.linalg.vector_norm(grads[0].flatten(1), dim=1) if need_input else None
                    param_norm = norms.finish().sqrt() if need_params else None
                    for s in chosen:
                        if s.fn is None:
                            out[s.name][start:stop] = input_norm if s.needs_input_grad else param_norm
                    del grads, loss
                else:
                    with torch.no_grad():
                        logits = model(x)
                logits, x = logits.detach(), x.detach()
                for s in chosen:
                    if s.fn is not None:
                        with torch.enable_grad():
                            out[s.name][start:stop] = s.fn(model, x, y, logits).detach().reshape(-1)
                predictions[start:stop] = logits.argmax(1)
                emb = capture.get(x)
                if grad_out is not None:
                    grad_out.add(start, emb, logits, y)
                if emb is not None and embeddings:
                    if emb_out is None:
                        emb_out = torch.empty(n, emb.shape[1], dtype=emb.dtype, device=device)
                    emb_out[start:stop] = emb
                now = time.perf_counter()
                if on_event is not None and (now - last_report > 0.2 or b == batches - 1):
                    last_report = now
                    on_event(BatchProgress(epoch=epoch, epochs=epochs, batch=b + 1, batches=batches))
    finally:
        for hook in folds:
            hook.remove()
        capture.close()
        model.train(was_training)
    result = ModelScores(scores={k: v.cpu().numpy() for k, v in out.items()}, predictions=predictions.cpu().numpy(),
                         embeddings=emb_out.cpu().numpy() if emb_out is not None else None,
                         seconds=time.perf_counter() - start_time)
    if grad_out is not None:
        result.gradients, result.gradient_projection = grad_out.numpy(), grad_out.projection
    return result
