"""The trainer: SGD on data that already sits on the device, in the shape of airbench.

No DataLoader and no per-sample Python: each epoch is a device-side permutation,
batches are gathered by index (on the device, or on the host and streamed for a
set above the device budget: `Dataset.batches`), augmented and normalised as whole
tensors, and the host syncs once per epoch (for metrics and the divergence check).
What a method changes in the loop (online selection, InfoBatch, weighted coresets,
observers, checkpoints) comes in as hooks (train_hooks.py); the loss of a batch is
one function, `batch_loss`. A cancel token is polled once per batch: a flag read.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .architectures import build_model
from .cancel import CancelToken
from .cancel import check as check_cancel
from .config import TrainConfig
from .data.dataset import Dataset
from .errors import ConfigError, TrainingDiverged
from .store.events import BatchProgress, EpochEnd, EventCallback, emit
from .train_hooks import (  # noqa: F401  (the hook types, importable from here as before)
    LEGACY_KEYWORDS,
    BatchObserver,
    BatchSelector,
    EpochPlan,
    Hooks,
    TrainStart,
    legacy_hooks,
)


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, float]]
    test_accuracy: float
    test_loss: float
    train_loss: float
    epochs: int
    steps: int
    samples: int
    seconds: float
    device: str
    train_seconds: float = 0.0  # the optimisation loop alone, without evaluation


    @property
    def samples_per_second(self) -> float:
        """Training throughput, evaluation excluded."""
        return self.samples / self.train_seconds if self.train_seconds > 0 else float("nan")


@dataclass
class Budget:
    epochs: int
    steps: int
    batches_per_epoch: int


def plan_budget(cfg: TrainConfig, n: int) -> Budget:
    per_epoch = max(1, math.ceil(n / cfg.batch_size))
    if cfg.steps is not None:
        return Budget(math.ceil(cfg.steps / per_epoch), cfg.steps, per_epoch)
    return Budget(cfg.epochs, cfg.epochs * per_epoch, per_epoch)


def lr_factor(cfg: TrainConfig, total_steps: int, batches_per_epoch: int) -> Callable[[int], float]:
    """The learning-rate multiplier at optimizer step s."""
    total = max(1, total_steps)
    if cfg.schedule == "constant":
        return lambda s: 1.0
    if cfg.schedule == "step":
        every = cfg.step_epochs * batches_per_epoch
        return lambda s: cfg.gamma ** (s // every)
    if cfg.schedule == "cosine":
        return lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    warm = max(1, int(cfg.warmup * total))
    return lambda s: (0.1 + 0.9 * s / warm) if s < warm else max(0.0, (total - s) / max(1, total - warm))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum; weight decay on weights only, not on biases and norm parameters."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """On the device, in channels_last: faster convolutions on GPUs and on CPUs (1.5x for `cnn` here)."""
    return model.to(device).to(memory_format=torch.channels_last)


def to_model_layout(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def tta_logits(model: nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Logits with test-time augmentation, as airbench94 infers (Jordan 2024): "flip" averages the image and
    its mirror; "flip_translate" averages that (weight 1/2) with the flip-averages of the image shifted one
    pixel up-left and down-right (1/4 each; reflect padding)."""
    if tta == "none":
        return model(x)

    def mirror(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * model(v) + 0.5 * model(v.flip(-1))

    logits = mirror(x)
    if tta == "flip":
        return logits
    h, w = x.shape[-2:]
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = 0.5 * mirror(to_model_layout(padded[..., :h, :w])) + 0.5 * mirror(to_model_layout(padded[..., 2:, 2:]))
    return 0.5 * logits + 0.5 * shifted


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, split: str = "test", batch_size: int = 1024,
             amp: bool = True, tta: str = "none") -> tuple[float, float]:
    """(accuracy, mean loss) on a split, with one host sync at the end; `tta` as in `tta_logits`."""
    device = dataset.device
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for x, y in dataset.split_batches(split, batch_size):
        x = to_model_layout(dataset.normalize(x))
        with autocast(device, amp):
            logits = tta_logits(model, x, tta)
        loss_sum += nn.functional.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    n = max(1, len(dataset.y_test if split == "test" else dataset.y_train))
    return correct.item() / n, loss_sum.item() / n


def batch_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0,
               weights: Sequence[torch.Tensor] = ()) -> torch.Tensor:
    """The training loss of one batch: mean cross-entropy, or mean_b(w_b · loss_b) when loss weights are given
    (InfoBatch's rescaling, a weighted coreset's weights; several multiply, in order)."""
    if not weights:
        return nn.functional.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    per_sample = nn.functional.cross_entropy(logits.float(), y, reduction="none", label_smoothing=label_smoothing)
    for w in weights:
        per_sample = per_sample * w
    return per_sample.mean()


def as_index(indices: np.ndarray | torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
    """Dataset indices as a long tensor on the device (all n when None)."""
    if indices is None:
        return torch.arange(n, device=device)
    return torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices,
                           dtype=torch.long).to(device)


class _Loop:
    """One training run's optimisation state and its epoch loop (what `train` used to hold in locals)."""

    def __init__(self, model: str | nn.Module, dataset: Dataset, cfg: TrainConfig, seed: int,
                 indices: np.ndarray | torch.Tensor | None, hooks: Hooks):
        device = dataset.device
        if isinstance(model, str):
            model = build_model(model, dataset.input_shape, dataset.num_classes, seed=seed)
        self.model = prepare_model(model, device)
        self.index = as_index(indices, len(dataset), device)
        if len(self.index) == 0:
            raise ConfigError("cannot train on an empty subset; raise the keep ratio")
        if callable(getattr(self.model, "init_from_data", None)):  # a data-dependent init (airbench's whitening)
            self.model.init_from_data(dataset.normalize(dataset.images(self.index[:5000])))
        self.dataset, self.cfg, self.hooks, self.device = dataset, cfg, hooks, device
        self.budget = plan_budget(cfg, len(self.index))
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.optimizer = make_optimizer(self.model, cfg)
        self.factor = lr_factor(cfg, self.budget.steps, self.budget.batches_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.factor)
        self.step_model = torch.compile(self.model) if cfg.compile and device.type == "cuda" else self.model
        self.augment = cfg.augment and dataset.augment != "none"
        self.steps_done = self.samples = 0
        self.train_seconds = self.last_report = 0.0

    def order(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """The epoch's samples in training order, their loss weights (a plan's) and its number of batches."""
        generator, device = self.generator, self.device
        if self.hooks.planner is None:
            perm = self.index[torch.randperm(len(self.index), device=device, generator=generator)]
            weights, batches = None, self.budget.batches_per_epoch
        else:
            perm, weights = self.hooks.planner.plan_epoch(epoch)
            order = torch.randperm(len(perm), device=device, generator=generator)
            perm, weights = perm[order], (weights[order] if weights is not None else None)
            batches = max(1, math.ceil(len(perm) / self.cfg.batch_size))
        if self.cfg.steps is not None:
            batches = min(batches, self.budget.steps - self.steps_done)
        return perm, weights, batches

    def step(self, idx: torch.Tensor, x: torch.Tensor, plan_weights: torch.Tensor | None):
        """One optimizer step on a drawn batch; (indices, detached logits, targets, detached loss) of what it
        trained on."""
        cfg, dataset = self.cfg, self.dataset
        y = dataset.y_train[idx]
        if self.augment:
            x = dataset.augment_batch(x, self.generator)
        hooks = self.hooks
        if hooks.selectors:
            idx, x, y = hooks.select(idx, x, y)
        x = to_model_layout(dataset.normalize(x))
        with autocast(self.device, cfg.amp):
            logits = self.step_model(x)
            weights = [] if plan_weights is None else [plan_weights]
            if hooks.weighers:
                weights += hooks.weights(idx)
            loss = batch_loss(logits, y, cfg.label_smoothing, weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return idx, logits.detach(), y, loss.detach()

    def epoch_lr(self, epoch: int) -> float:
        """The mean learning rate of epoch `epoch`'s optimizer steps under the full-data schedule (step s runs at
        lr · factor(s)); 0 for an epoch with no steps."""
        per_epoch = self.budget.batches_per_epoch
        steps = range((epoch - 1) * per_epoch, min(epoch * per_epoch, self.budget.steps))
        return self.cfg.lr * sum(map(self.factor, steps)) / len(steps) if len(steps) else 0.0

    def advance_lr(self, epoch: int, b: int, batches: int) -> None:
        if self.hooks.planner is None:
            self.scheduler.step()
            return
        lr = self.factor((epoch - 1 + (b + 1) / batches) * self.budget.batches_per_epoch)  # the full-data schedule
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):  # at the fraction done
            group["lr"] = base * lr

    def epoch(self, epoch: int, on_event: EventCallback | None, trial: int | None,
              cancel: CancelToken | None) -> dict[str, float]:
        """Train one epoch; its training metrics, after the epoch's one host sync."""
        perm, plan_weights, batches = self.order(epoch)
        size = self.cfg.batch_size
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        epoch_start = time.perf_counter()
        for b, (idx, x) in enumerate(self.dataset.batches(perm, size, batches)):
            check_cancel(cancel)
            weights = None if plan_weights is None else plan_weights[b * size:(b + 1) * size]
            idx, logits, y, loss = self.step(idx, x, weights)
            self.advance_lr(epoch, b, batches)
            loss_sum += loss * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if self.hooks.observers:
                self.hooks.observe(idx, logits, y)
            now = time.perf_counter()
            if on_event is not None and (now - self.last_report > 0.2 or b == batches - 1):
                self.last_report = now
                on_event(BatchProgress(epoch=epoch, epochs=self.budget.epochs, batch=b + 1, batches=batches,
                                       trial=trial))
        self.steps_done += batches
        self.samples += seen
        train_loss = loss_sum.item() / max(1, seen)
        self.train_seconds += time.perf_counter() - epoch_start
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training loss became {train_loss} in epoch {epoch}; lower the learning rate")
        return {"train_loss": train_loss, "train_accuracy": correct.item() / max(1, seen),
                "lr": self.optimizer.param_groups[0]["lr"]}


def train(model: str | nn.Module, dataset: Dataset, cfg: TrainConfig | None = None, seed: int = 0,
          indices: np.ndarray | torch.Tensor | None = None, on_event: EventCallback | None = None, *,
          hooks: Iterable[object] = (), trial: int | None = None, evaluate_every_epoch: bool = True,
          evaluate_at_end: bool = True, cancel: CancelToken | None = None, **legacy: Any) -> TrainResult:
    """Train `model` (a registry name or a module) on `dataset`'s training indices (`indices`, default all).

    `hooks` add what a method changes in the loop (train_hooks.py: plan the epoch,
    select within a batch, weigh the loss, observe, epoch end); online selection,
    InfoBatch, weighted coresets, training-dynamics counters and checkpoints are
    hooks. A hook's `start` or `epoch_end` may say STOP: training ends there. The
    keywords from before hooks (`observers`, `select_batch`, `plan_epoch`, `weights`,
    `checkpoint_epochs`, `on_checkpoint`) still work and become those hooks. With a
    plan the learning rate follows the schedule of the full-data epochs, by the
    fraction of each epoch done. `cancel` is polled once per batch (a flag read, no
    sync). The test set is evaluated after every epoch, or with
    `evaluate_every_epoch=False` only after the last; with `evaluate_at_end=False`
    too, never (test metrics NaN). Same seed, same weights on the CPU.
    """
    unknown = sorted(set(legacy) - set(LEGACY_KEYWORDS))
    if unknown:
        raise TypeError(f"train() got an unexpected keyword argument {unknown[0]!r}")
    cfg = cfg or TrainConfig()
    loop = _Loop(model, dataset, cfg, seed, indices, Hooks([*legacy_hooks(**legacy), *hooks]))
    model, epochs = loop.model, loop.budget.epochs
    stop = loop.hooks.start(TrainStart(model, dataset, loop.index, epochs, loop.epoch_lr, cancel))
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    if not stop:
        model.train()
    for epoch in range(1, epochs + 1):
        if stop:
            break
        metrics = loop.epoch(epoch, on_event, trial, cancel)
        if evaluate_every_epoch or (epoch == epochs and evaluate_at_end):
            metrics["test_accuracy"], metrics["test_loss"] = evaluate(model, dataset, "test", cfg.eval_batch_size,
                                                                      cfg.amp, cfg.tta)
        metrics["seconds"] = time.perf_counter() - start
        history.append({"epoch": epoch, **metrics})
        emit(on_event, EpochEnd(epoch=epoch, epochs=epochs, metrics=metrics, trial=trial))
        stop = loop.hooks.epoch_end(epoch, model)
    seconds = time.perf_counter() - start
    if history and "test_accuracy" in history[-1]:
        test_acc, test_loss = history[-1]["test_accuracy"], history[-1]["test_loss"]
    elif evaluate_at_end:
        test_acc, test_loss = evaluate(model, dataset, "test", cfg.eval_batch_size, cfg.amp, cfg.tta)
    else:
        test_acc = test_loss = float("nan")
    return TrainResult(model=model, history=history, test_accuracy=test_acc, test_loss=test_loss,
                       train_loss=history[-1]["train_loss"] if history else float("nan"), epochs=epochs,
                       steps=loop.steps_done, samples=loop.samples, seconds=seconds, device=str(dataset.device),
                       train_seconds=loop.train_seconds)
