"""The trainer: SGD on data that already sits on the device, in the shape of airbench.

No DataLoader and no per-sample Python: each epoch is a device-side permutation,
batches are gathered by index (on the device, or on the host and streamed for a
set above the device budget: `Dataset.batches`), augmented and normalised as whole
tensors, and the host syncs once per epoch (for metrics and the divergence check).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .architectures import build_model
from .config import TrainConfig
from .data.dataset import Dataset
from .errors import ConfigError, TrainingDiverged
from .store.events import BatchProgress, EpochEnd, EventCallback, emit

# Called once per batch with (dataset indices, logits, targets), all on the device.
BatchObserver = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]
# Online batch selection: called once per batch with (dataset indices, uint8 images after augmentation,
# targets), returns the positions in the batch to backpropagate (a device tensor of indices).
BatchSelector = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# Dynamic pruning (InfoBatch): called at the start of each epoch with its number (from 1), returns the dataset
# indices that epoch trains on and per-sample loss weights aligned with them (None: all 1), device tensors.
EpochPlan = Callable[[int], tuple[torch.Tensor, "torch.Tensor | None"]]


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


def train(
    model: str | nn.Module,
    dataset: Dataset,
    cfg: TrainConfig | None = None,
    seed: int = 0,
    indices: np.ndarray | torch.Tensor | None = None,
    on_event: EventCallback | None = None,
    checkpoint_epochs: Iterable[int] = (),
    on_checkpoint: Callable[[int, nn.Module], None] | None = None,
    observers: Iterable[BatchObserver] = (),
    trial: int | None = None,
    evaluate_every_epoch: bool = True,
    select_batch: BatchSelector | None = None,
    evaluate_at_end: bool = True,
    plan_epoch: EpochPlan | None = None,
    weights: np.ndarray | torch.Tensor | None = None,
) -> TrainResult:
    """Train `model` (a registry name or a module) on `dataset`'s training indices.

    `on_checkpoint(epoch, model)` is called at each epoch in `checkpoint_epochs`
    (0 is the initial model). `select_batch` picks the part of each drawn batch that
    is trained on (online batch selection); observers and counts see only that part.
    The test set is evaluated after every epoch, or with `evaluate_every_epoch=False`
    only after the last; with `evaluate_at_end=False` too, never (test metrics NaN):
    surrogates and benchmarks do not use them. `plan_epoch(epoch)` chooses each epoch's
    samples and loss weights (dynamic pruning); the learning rate then follows the
    schedule of the full-data epochs, by the fraction of each epoch done. `weights` (one
    per entry of `indices`) make the batch loss mean_b(w_b · loss_b), a weighted coreset's
    loss (CRAIG, GradMatch): not renormalised per batch, so scaling every weight by c
    scales each plain-SGD step by c. Both kinds of weight multiply when both are given.
    Same seed, same weights on the CPU.
    """
    cfg = cfg or TrainConfig()
    device = dataset.device
    if isinstance(model, str):
        model = build_model(model, dataset.input_shape, dataset.num_classes, seed=seed)
    model = prepare_model(model, device)
    if indices is None:
        index = torch.arange(len(dataset), device=device)
    else:
        index = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices,
                                dtype=torch.long).to(device)
    n = len(index)
    if n == 0:
        raise ConfigError("cannot train on an empty subset; raise the keep ratio")
    sample_weight = None
    if weights is not None:
        w = torch.as_tensor(np.asarray(weights) if not isinstance(weights, torch.Tensor) else weights)
        if w.shape != (n,):
            raise ConfigError(f"weights must hold one value per kept index ({n}), got shape {tuple(w.shape)}")
        sample_weight = torch.zeros(len(dataset), device=device)
        sample_weight[index] = w.to(device=device, dtype=torch.float32)
    if callable(getattr(model, "init_from_data", None)):  # a data-dependent init (airbench's whitening), once
        model.init_from_data(dataset.normalize(dataset.images(index[:5000])))
    budget = plan_budget(cfg, n)
    checkpoints = sorted({int(e) for e in checkpoint_epochs})
    if checkpoints and checkpoints[-1] > budget.epochs:
        raise ConfigError(f"checkpoint epoch {checkpoints[-1]} is beyond the training budget of {budget.epochs} epochs; "
                          f"lower the score epoch or raise the surrogate's epochs")
    observers = list(observers)

    generator = torch.Generator(device=device).manual_seed(seed)
    optimizer = make_optimizer(model, cfg)
    factor = lr_factor(cfg, budget.steps, budget.batches_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    step_model = torch.compile(model) if cfg.compile and device.type == "cuda" else model
    augment = cfg.augment and dataset.augment != "none"

    if 0 in checkpoints and on_checkpoint:
        on_checkpoint(0, model)
    history: list[dict[str, float]] = []
    steps_done = samples = 0
    last_report = 0.0
    train_loss = float("nan")
    train_seconds = 0.0
    start = time.perf_counter()
    model.train()
    for epoch in range(1, budget.epochs + 1):
        plan_weights = None
        if plan_epoch is None:
            perm = index[torch.randperm(n, device=device, generator=generator)]
            batches = budget.batches_per_epoch
        else:
            perm, plan_weights = plan_epoch(epoch)
            order = torch.randperm(len(perm), device=device, generator=generator)
            perm, plan_weights = perm[order], (plan_weights[order] if plan_weights is not None else None)
            batches = max(1, math.ceil(len(perm) / cfg.batch_size))
        if cfg.steps is not None:
            batches = min(batches, budget.steps - steps_done)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        epoch_start = time.perf_counter()
        for b, (idx, x) in enumerate(dataset.batches(perm, cfg.batch_size, batches)):
            y = dataset.y_train[idx]
            if augment:
                x = dataset.augment_batch(x, generator)
            if select_batch is not None:
                keep = select_batch(idx, x, y)
                idx, x, y = idx[keep], x[keep], y[keep]
            x = to_model_layout(dataset.normalize(x))
            with autocast(device, cfg.amp):
                logits = step_model(x)
                if plan_weights is None and sample_weight is None:
                    loss = nn.functional.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                else:
                    per_sample = nn.functional.cross_entropy(logits.float(), y, reduction="none",
                                                             label_smoothing=cfg.label_smoothing)
                    if plan_weights is not None:
                        per_sample = per_sample * plan_weights[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                    if sample_weight is not None:
                        per_sample = per_sample * sample_weight[idx]
                    loss = per_sample.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if plan_epoch is None:
                scheduler.step()
            else:  # the full-data schedule at the same fraction of the epoch
                lr = factor((epoch - 1 + (b + 1) / batches) * budget.batches_per_epoch)
                for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
                    group["lr"] = base * lr
            detached = logits.detach()
            loss_sum += loss.detach() * len(y)
            correct += (detached.argmax(1) == y).sum()
            seen += len(y)
            for observer in observers:
                observer(idx, detached, y)
            now = time.perf_counter()
            if on_event is not None and (now - last_report > 0.2 or b == batches - 1):
                last_report = now
                on_event(BatchProgress(epoch=epoch, epochs=budget.epochs, batch=b + 1, batches=batches, trial=trial))
        steps_done += batches
        samples += seen
        train_loss = loss_sum.item() / max(1, seen)
        train_seconds += time.perf_counter() - epoch_start
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training loss became {train_loss} in epoch {epoch}; lower the learning rate")
        metrics = {"train_loss": train_loss, "train_accuracy": correct.item() / max(1, seen),
                   "lr": optimizer.param_groups[0]["lr"]}
        if evaluate_every_epoch or (epoch == budget.epochs and evaluate_at_end):
            metrics["test_accuracy"], metrics["test_loss"] = evaluate(model, dataset, "test", cfg.eval_batch_size,
                                                                      cfg.amp, cfg.tta)
        metrics["seconds"] = time.perf_counter() - start
        history.append({"epoch": epoch, **metrics})
        emit(on_event, EpochEnd(epoch=epoch, epochs=budget.epochs, metrics=metrics, trial=trial))
        if epoch in checkpoints and on_checkpoint:
            on_checkpoint(epoch, model)
    seconds = time.perf_counter() - start
    if history and "test_accuracy" in history[-1]:
        test_acc, test_loss = history[-1]["test_accuracy"], history[-1]["test_loss"]
    elif evaluate_at_end:
        test_acc, test_loss = evaluate(model, dataset, "test", cfg.eval_batch_size, cfg.amp, cfg.tta)
    else:
        test_acc = test_loss = float("nan")
    return TrainResult(model=model, history=history, test_accuracy=test_acc, test_loss=test_loss,
                       train_loss=train_loss, epochs=budget.epochs, steps=steps_done, samples=samples,
                       seconds=seconds, device=str(device), train_seconds=train_seconds)

