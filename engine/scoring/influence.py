"""Influence scores over the surrogate's checkpoints: TracIn self-influence, gradient alignment and MoSo.

Each is exact in the gradients it uses and is computed while the surrogate trains:
a trainer hook (`CheckpointScore`) that, at every `every`-th epoch end (a
checkpoint c, the model θ_c), runs its passes over the whole training set and adds
η_c times a per-sample value, η_c the mean learning rate of epoch c's steps (the
step size between checkpoints c − 1 and c, TracIn's η_i; 1 with lr_weight = false):

- `tracin`: Σ_c η_c ‖g_n(θ_c)‖², TracIn-CP's self-influence (Pruthi et al. 2020),
  one pass per checkpoint, the exact per-layer norm forms (gradnorm/);
- `gradient_alignment`: Σ_c η_c g_n(θ_c) · ḡ(θ_c), ḡ the mean training gradient:
  TracIn-CP's influence of sample n on the mean training loss; two passes per
  checkpoint (ḡ, then every g_n · ḡ by the per-layer inner-product forms);
- `moso`: MoSo's first-order estimate (Tan et al. 2023),
  (1/|C|) Σ_c η_c ∇L(S∖n; θ_c) · g_n(θ_c) with ∇L(S∖n) = (N ḡ − g_n)/(N − 1), the
  expectation over t of the paper's Eq. 4 (up to its constant factor); two passes
  per checkpoint.

g_n(θ) = ∇θ ℓ(f_θ(x_n), y_n) over every trainable parameter, in eval mode (BatchNorm's
running statistics, as the reference codes score), on the un-augmented input, in the
model's dtype with TF32 off. ḡ is the gradient of the mean eval-mode loss over the
training set, which is the mean of those g_n. Why inner products by the per-layer
forms rather than a forward-mode JVP of the per-sample losses: both cost about three
products per layer per sample (a JVP's primal and two tangent products; here the
forward, the backward's activation gradient and one product with v), and measured
so (docs/performance.md: the JVP 0.6–1.5× the forms' time for the inner products
alone, MNIST cnn, on a loaded CPU); but the same backward also gives the norms MoSo
needs (its pass costs what gradient_alignment's does), k vectors cost k products
rather than k passes, and every layer family has an exact, tested form (BatchNorm in
eval mode, LayerNorm, GroupNorm, RMSNorm, a torch.func fallback), where torch's
forward-mode AD lacks formulas for some ops.

`mean_gradient` and `gradient_products` are the two passes, usable on any model.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..cancel import CancelToken
from ..cancel import check as check_cancel
from ..data.dataset import Dataset
from ..errors import ConfigError
from ..train_hooks import TrainHook, TrainStart
from ..trainer import as_index, prepare_model, to_model_layout
from .batch import ieee_float32, model_dtype
from .gradnorm.persample import DEFAULT_WORKSPACE_MB, PerSampleGradNorms

PASS_BATCH = 256  # the checkpoint passes' batch size (it changes no score)
Vector = dict[str, torch.Tensor]  # parameter name (model.named_parameters()) -> a tensor of its shape


def trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The model's trainable parameters by name: those the per-sample gradients cover."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def mean_gradient(model: nn.Module, dataset: Dataset, batch_size: int = PASS_BATCH,
                  indices: np.ndarray | torch.Tensor | None = None, cancel: CancelToken | None = None) -> Vector:
    """ḡ = (1/N) Σ_n ∇θ ℓ(f_θ(x_n), y_n) over the training samples `indices` (default all): the gradient of the
    mean eval-mode loss, per trainable parameter, in the model's dtype. One forward and backward per batch (a
    training step's cost without the update); the parameters' `.grad` is left alone."""
    model = prepare_model(model, dataset.device)
    dtype, index = model_dtype(model), as_index(indices, len(dataset), dataset.device)
    params = trainable(model)
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    was_training = model.training
    model.eval()
    try:
        with ieee_float32(), torch.enable_grad():
            for idx, images in dataset.batches(index, batch_size):
                check_cancel(cancel)
                x = to_model_layout(dataset.normalize(images, dtype))
                loss = F.cross_entropy(model(x), dataset.y_train[idx], reduction="sum")
                for name, g in zip(params, torch.autograd.grad(loss, list(params.values()))):
                    total[name] += g
    finally:
        model.train(was_training)
    return {name: t / len(index) for name, t in total.items()}


def gradient_products(model: nn.Module, dataset: Dataset, vectors: list[Vector] | tuple[Vector, ...] = (),
                      norms: bool = True, batch_size: int = PASS_BATCH,
                      indices: np.ndarray | torch.Tensor | None = None, workspace_mb: float = DEFAULT_WORKSPACE_MB,
                      cancel: CancelToken | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ‖g_n‖² (N,) (zeros with norms=False) and g_n · v_j (N, k) for the training samples `indices`,
    exact, in one pass: a forward and one backward of activation gradients per batch, each layer's norm and
    inner-product forms applied as its output gradient arrives (gradnorm/persample.py). Eval mode, the model's
    dtype; results on the device."""
    model = prepare_model(model, dataset.device)
    dtype, device = model_dtype(model), dataset.device
    index = as_index(indices, len(dataset), device)
    sq = torch.zeros(len(index), dtype=dtype, device=device)
    dots = torch.zeros(len(index), len(vectors), dtype=dtype, device=device)
    was_training = model.training
    model.eval()
    start = 0
    try:
        with PerSampleGradNorms(model, workspace_mb, vectors=vectors, norms=norms) as hooks, ieee_float32():
            for idx, images in dataset.batches(index, batch_size):
                check_cancel(cancel)
                hooks.begin(len(idx), dtype, device)
                with torch.enable_grad():
                    loss = F.cross_entropy(model(to_model_layout(dataset.normalize(images, dtype))),
                                           dataset.y_train[idx], reduction="sum")
                    torch.autograd.grad(loss, hooks.roots)
                sq[start:start + len(idx)] = hooks.finish()
                dots[start:start + len(idx)] = hooks.dots
                start += len(idx)
    finally:
        model.train(was_training)
    return sq, dots


def squared_norm(vector: Vector) -> float:
    return float(sum(t.double().square().sum() for t in vector.values()))


class CheckpointScore(TrainHook):
    """A score gathered over the surrogate's checkpoints while it trains: at each epoch end c that is a multiple
    of `every`, `at_checkpoint(model)` gives a per-sample value, weighted by η_c (`lr_weight`) and kept; `scores()`
    is their sum (`average`: their mean) over the last `last` checkpoints so far (0: all of them).

    Built as a training observer, `observer(n, device, **options)`; the surrogate run passes it to the trainer
    as a hook (`train_hooks.as_hook`). At a score epoch t it holds the checkpoints ≤ t, so the value at t is the
    same whether or not training goes on.
    """

    average = False

    def __init__(self, n: int, device: torch.device | str, every: int = 1, last: int = 0, lr_weight: bool = True):
        self.n, self.device = n, torch.device(device)
        self.every, self.last, self.lr_weight = int(every), int(last), bool(lr_weight)
        self.parts: deque[torch.Tensor] = deque(maxlen=self.last or None)
        self.total = torch.zeros(n, dtype=torch.float64, device=self.device)
        self.count = 0
        self.checkpoints: list[int] = []  # the epochs scored so far, and their weights
        self.weights: list[float] = []
        self.dataset: Dataset | None = None
        self.epoch_lr = None
        self.cancel: CancelToken | None = None

    def start(self, state: TrainStart) -> None:
        if len(state.dataset) != self.n:
            raise ConfigError(f"{type(self).__name__} was made for {self.n} samples; the data set has "
                              f"{len(state.dataset)}")
        if self.lr_weight and state.epoch_lr is None:
            raise ConfigError(f"{type(self).__name__}: the trainer gives no learning rate to weigh the checkpoints "
                              "by; set lr_weight = false")
        self.dataset, self.epoch_lr, self.cancel = state.dataset, state.epoch_lr, state.cancel

    def epoch_end(self, epoch: int, model: nn.Module) -> None:
        if epoch < 1 or epoch % self.every:
            return
        if self.dataset is None:
            raise ConfigError(f"{type(self).__name__} scores at checkpoints of a training run: pass it to "
                              "engine.train(hooks=[...]) (its start step gives it the data)")
        eta = self.epoch_lr(epoch) if self.lr_weight else 1.0
        self.add(epoch, eta, self.at_checkpoint(model))

    def add(self, epoch: int, eta: float, values: torch.Tensor) -> None:
        """Keep checkpoint `epoch`'s per-sample values, weighted by eta."""
        weighted = eta * values.detach().to(device=self.device, dtype=torch.float64)
        if self.last:
            self.parts.append(weighted)
        else:
            self.total += weighted
        self.checkpoints.append(epoch)
        self.weights.append(eta)
        self.count += 1

    def scores(self) -> np.ndarray:
        """(N,) float64: the sum (or mean) of the kept checkpoints' weighted values (zeros before the first)."""
        if self.last:
            total = sum(self.parts, torch.zeros(self.n, dtype=torch.float64, device=self.device))
            count = len(self.parts)
        else:
            total, count = self.total, self.count
        if self.average and count:
            total = total / count
        return total.cpu().numpy()

    def at_checkpoint(self, model: nn.Module) -> torch.Tensor:
        """Each sample's value at this checkpoint, (N,)."""
        raise NotImplementedError


class TracIn(CheckpointScore):
    """TracIn-CP self-influence: Σ_c η_c ‖∇θ ℓ(z_n; θ_c)‖² over the checkpoints (Pruthi et al. 2020)."""

    def at_checkpoint(self, model: nn.Module) -> torch.Tensor:
        sq, _ = gradient_products(model, self.dataset, cancel=self.cancel)
        return sq


class GradientAlignment(CheckpointScore):
    """Σ_c η_c ∇θ ℓ(z_n; θ_c) · ḡ(θ_c), ḡ the mean training gradient: TracIn-CP's influence of z_n on the mean
    training loss."""

    def at_checkpoint(self, model: nn.Module) -> torch.Tensor:
        mean = mean_gradient(model, self.dataset, cancel=self.cancel)
        _, dots = gradient_products(model, self.dataset, [mean], norms=False, cancel=self.cancel)
        return dots[:, 0]


class MoSo(CheckpointScore):
    """MoSo's first-order estimate (Tan et al. 2023): the mean over the checkpoints of η_c ∇L(S∖z_n; θ_c) ·
    ∇ℓ(z_n; θ_c), with ∇L(S∖z_n) = (N ḡ − g_n)/(N − 1); `form = "reference"` is the expression hrtan/MoSo's
    scoring.py computes instead (`MoSo_scoring_exact`)."""

    average = True

    def __init__(self, n: int, device: torch.device | str, every: int = 1, last: int = 0, lr_weight: bool = True,
                 form: str = "paper"):
        super().__init__(n, device, every, last, lr_weight)
        if n < 2:
            raise ConfigError("moso needs at least 2 training samples (it removes one from the set)")
        self.form = form

    def at_checkpoint(self, model: nn.Module) -> torch.Tensor:
        mean = mean_gradient(model, self.dataset, cancel=self.cancel)
        sq, dots = gradient_products(model, self.dataset, [mean], cancel=self.cancel)
        return moso_values(sq.double(), dots[:, 0].double(), squared_norm(mean), len(self.dataset), self.form)


def moso_values(sq: Any, dot: Any, mean_sq: float, n: int, form: str = "paper") -> Any:
    """One checkpoint's MoSo value per sample from ‖g_n‖², g_n · ḡ and ‖ḡ‖² over n samples.

    "paper": ∇L(S∖n) · g_n = (n·(g_n · ḡ) − ‖g_n‖²)/(n − 1). "reference": hrtan/MoSo's
    `MoSo_scoring_exact`, (2n − 3)/(n − 1)² ‖ḡ‖² − ‖g_n‖²/(n − 1)² + (2n − 4)/(n − 1)² (ḡ − g_n/n) · g_n.
    """
    if form == "paper":
        return (n * dot - sq) / (n - 1)
    if form == "reference":
        m = (n - 1) ** 2
        return (2 * n - 3) / m * mean_sq - sq / m + (2 * n - 4) / m * (dot - sq / n)
    raise ConfigError(f'moso form {form!r} is unknown; use "paper" or "reference"')
