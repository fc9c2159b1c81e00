"""The trainer's hooks: what a training method adds to the one loop, without a keyword of its own.

Why hooks: online batch selection, InfoBatch's per-epoch plan, weighted coresets,
training-dynamics counters, checkpoints and learning curves each change one step
of the same loop. A hook overrides only the steps it needs; the trainer calls each
step of each hook at its place, so a new dynamic method is one class, not one more
parameter of `train`. None of the steps may sync with the host per batch.

The steps, in the order the trainer takes them:

- `start(state)` once, before the first epoch (`TrainStart`: the model, the data,
  the trained indices, the budget, each epoch's mean learning rate and the run's
  cancel token); may return STOP to train nothing;
- `plan_epoch(epoch)` at the start of each epoch (from 1): (dataset indices,
  per-sample loss weights or None), device tensors; at most one hook plans;
- `select(idx, x, y)` per drawn batch (uint8 images after augmentation): the
  positions in the batch to train on;
- `weigh(idx)` per batch: a loss weight per sample of the batch, or None;
- `observe(idx, logits, y)` per batch, after the optimizer step, with the
  detached logits of the samples trained on;
- `epoch_end(epoch, model)` after each epoch's metrics; may return STOP.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from .cancel import CancelToken
    from .data.dataset import Dataset

STOP = "stop"  # what `start`, `epoch_end` or a checkpoint callback returns to end training there

# Called once per batch with (dataset indices, logits, targets), all on the device.
BatchObserver = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]
# Online batch selection: (dataset indices, uint8 images after augmentation, targets) -> positions to keep.
BatchSelector = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# Dynamic pruning: epoch (from 1) -> (dataset indices, per-sample loss weights aligned with them or None).
EpochPlan = Callable[[int], tuple[torch.Tensor, "torch.Tensor | None"]]
# A checkpoint callback: (epoch, model) -> STOP to end training after it, else None.
CheckpointCallback = Callable[[int, "nn.Module"], "str | None"]


@dataclass
class TrainStart:
    """What a hook may read before the first epoch."""

    model: nn.Module
    dataset: Dataset
    index: torch.Tensor  # the trained dataset indices, on the device
    epochs: int  # the budget's epochs
    # epoch e (from 1) -> the mean learning rate of its optimizer steps, the full-data schedule's: the step size
    # between checkpoints e − 1 and e (TracIn's η); None when the trainer does not say
    epoch_lr: Callable[[int], float] | None = None
    cancel: CancelToken | None = None  # the run's, for a hook that does long work of its own (a scoring pass)


class TrainHook:
    """A hook with every step a no-op: subclass it and override the steps you need."""

    def start(self, state: TrainStart) -> str | None:
        return None

    def plan_epoch(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def select(self, idx: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def weigh(self, idx: torch.Tensor) -> torch.Tensor | None:
        return None

    def observe(self, idx: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        return None

    def epoch_end(self, epoch: int, model: nn.Module) -> str | None:
        return None


def overrides(hook: object, step: str) -> bool:
    """Whether `hook` does something at `step`: a TrainHook that overrides it, or any object with that method."""
    method = getattr(type(hook), step, None)
    return callable(method) and method is not getattr(TrainHook, step)


class Hooks:
    """A run's hooks sorted by step, so the loop calls only those that do something there."""

    def __init__(self, hooks: Iterable[object]):
        self.hooks = list(hooks)
        planners = [h for h in self.hooks if overrides(h, "plan_epoch")]
        if len(planners) > 1:
            raise ConfigError(f"{len(planners)} hooks plan the epochs ({', '.join(type(h).__name__ for h in planners)}); "
                              "one run trains on one plan")
        self.planner = planners[0] if planners else None
        self.selectors = [h for h in self.hooks if overrides(h, "select")]
        self.weighers = [h for h in self.hooks if overrides(h, "weigh")]
        self.observers = [h for h in self.hooks if overrides(h, "observe")]
        self.enders = [h for h in self.hooks if overrides(h, "epoch_end")]

    def start(self, state: TrainStart) -> bool:
        """Every hook's start, in order; whether one said stop."""
        said = [h.start(state) for h in self.hooks if overrides(h, "start")]
        return STOP in said

    def select(self, idx: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
        for hook in self.selectors:
            keep = hook.select(idx, x, y)
            idx, x, y = idx[keep], x[keep], y[keep]
        return idx, x, y

    def weights(self, idx: torch.Tensor) -> list[torch.Tensor]:
        return [w for w in (h.weigh(idx) for h in self.weighers) if w is not None]

    def observe(self, idx: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        for hook in self.observers:
            hook.observe(idx, logits, y)

    def epoch_end(self, epoch: int, model: nn.Module) -> bool:
        """Every hook's epoch end (all of them, even after one said stop); whether one said stop."""
        said = [h.epoch_end(epoch, model) for h in self.enders]
        return STOP in said


# ---------------------------------------------------------------- hooks made from plain functions
def as_hook(observer: object) -> object:
    """A training observer as a hook: itself when it is one (a TrainHook, e.g. a scorer that scores at
    checkpoints), else its `observer(idx, logits, y)` calls wrapped in `Observe`."""
    return observer if isinstance(observer, TrainHook) else Observe(observer)


class Observe(TrainHook):
    """A `BatchObserver` function (forgetting, AUM, TDDS counters: `observer(idx, logits, y)`) as a hook."""

    def __init__(self, observer: BatchObserver):
        self.observer = observer

    def observe(self, idx: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.observer(idx, logits, y)


class SelectBatch(TrainHook):
    """A `BatchSelector` function as a hook: it picks the part of each drawn batch that is trained on."""

    def __init__(self, selector: BatchSelector):
        self.selector = selector

    def select(self, idx: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.selector(idx, x, y)


class PlanEpochs(TrainHook):
    """An `EpochPlan` function as a hook: it chooses each epoch's samples and loss weights."""

    def __init__(self, plan: EpochPlan):
        self.plan = plan

    def plan_epoch(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.plan(epoch)


class Checkpoints(TrainHook):
    """Calls `callback(epoch, model)` at each of `epochs` (0: the initial model, before any step).

    The callback may return STOP: training ends right after that checkpoint (the
    learning-rate schedule still follows the whole budget, so the model at epoch t
    is the same whether or not later epochs run). An epoch beyond the budget is a
    ConfigError before any step.
    """

    def __init__(self, epochs: Iterable[int], callback: CheckpointCallback | None = None):
        self.epochs = sorted({int(e) for e in epochs})
        self.callback = callback

    def start(self, state: TrainStart) -> str | None:
        if self.epochs and self.epochs[-1] > state.epochs:
            raise ConfigError(f"checkpoint epoch {self.epochs[-1]} is beyond the training budget of {state.epochs} "
                              f"epochs; lower the score epoch or raise the surrogate's epochs")
        return self.epoch_end(0, state.model) if 0 in self.epochs else None

    def epoch_end(self, epoch: int, model: nn.Module) -> str | None:
        if epoch in self.epochs and self.callback is not None:
            return self.callback(epoch, model)
        return None


class SampleWeights(TrainHook):
    """A weighted coreset's loss (CRAIG, GradMatch): one weight per trained index, the batch loss mean_b(w_b · loss_b).

    Not renormalised per batch, so scaling every weight by c scales each plain-SGD step by c.
    """

    def __init__(self, weights: np.ndarray | torch.Tensor):
        self.given = weights
        self.by_index: torch.Tensor | None = None

    def start(self, state: TrainStart) -> None:
        w = self.given if isinstance(self.given, torch.Tensor) else torch.as_tensor(np.asarray(self.given))
        n = len(state.index)
        if w.shape != (n,):
            raise ConfigError(f"weights must hold one value per kept index ({n}), got shape {tuple(w.shape)}")
        device = state.index.device
        self.by_index = torch.zeros(len(state.dataset), device=device)
        self.by_index[state.index] = w.to(device=device, dtype=torch.float32)

    def weigh(self, idx: torch.Tensor) -> torch.Tensor:
        return self.by_index[idx]


LEGACY_KEYWORDS = ("select_batch", "plan_epoch", "weights", "observers", "checkpoint_epochs", "on_checkpoint")


def legacy_hooks(select_batch: BatchSelector | None = None, plan_epoch: EpochPlan | None = None,
                 weights: np.ndarray | torch.Tensor | None = None, observers: Iterable[BatchObserver] = (),
                 checkpoint_epochs: Iterable[int] = (), on_checkpoint: CheckpointCallback | None = None,
                 ) -> list[TrainHook]:
    """The hooks that `train`'s keywords from before hooks stand for, so that old calls keep working."""
    hooks: list[TrainHook] = []
    if select_batch is not None:
        hooks.append(SelectBatch(select_batch))
    if plan_epoch is not None:
        hooks.append(PlanEpochs(plan_epoch))
    if weights is not None:
        hooks.append(SampleWeights(weights))
    hooks.extend(Observe(o) for o in observers)
    checkpoints = list(checkpoint_epochs)
    if checkpoints or on_checkpoint is not None:
        hooks.append(Checkpoints(checkpoints, on_checkpoint))
    return hooks
