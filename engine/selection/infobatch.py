"""InfoBatch's per-epoch plan (Qin et al., "InfoBatch: Lossless Training Speed Up by Unbiased Dynamic Data Pruning",
ICLR 2024; reference code NUS-HPC-AI-Lab/InfoBatch, `infobatch/infobatch.py`), as a trainer hook (plan the epoch,
observe the batch).

The reference's rule, each pruning epoch: the samples whose latest score is below the mean are "well learned";
exactly int(keep · |well learned|) of them, chosen uniformly at random without replacement, are kept, keep =
min(1, max(0.1, 1 − r)) (so r above 0.9 prunes 0.9), and train with their loss scaled by 1/keep; every other
sample is kept at weight 1. Epoch e (from 1) prunes while e ≤ δ·E, as the reference's sampler does (its e-th
`reset` prunes while e ≤ num_epochs·delta: 175 of 200 epochs, 7 of 8 at δ = 0.875); the later epochs train on
every sample at weight 1. Scores start equal (the reference's 3), so the first epoch prunes nothing; each trained
sample's score is then its latest loss from the training forward (a trainer observer), all on the device.

The ranking score may instead be any registered scorer the training forward gives (`dynamic.score`), with its
`[scoring.NAME]` options: a batch scorer of the logits (EL2N, entropy, margin, ..., `fn(None, None, y, logits,
**options)`: it is shown no model and no input), its latest value per sample as for the loss, or a `training`
scorer's running statistic (forgetting, AUM, ...), read once per epoch from its observer; every score is "higher =
harder", so below the mean is "well learned" as for the loss. Differences from the reference: the draw comes from a
generator seeded by the trial's seed (the reference reseeds numpy's global generator with the epoch number, so every
run draws alike); the annealing epochs always train at weight 1 (the reference resets the weights only when δ·E is
a whole number); the learning-rate schedule follows the full-data epochs by fraction done (the trainer's plan mode)
instead of being re-planned for the reduced step count.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..registry import Ref
from ..scoring.registry import SURROGATE_OPTIONS, check_scorer, check_scorer_options
from ..train_hooks import TrainHook, TrainStart

MIN_KEEP = 0.1  # the reference's clamp: keep = min(1, max(0.1, 1 - r))


def _load(obj):
    return obj.load() if isinstance(obj, Ref) else obj


def keep_fraction(ratio: float) -> float:
    """The fraction of the well-learned samples kept: 1 − r, clamped to [0.1, 1] as the reference does."""
    return min(1.0, max(MIN_KEEP, 1.0 - ratio))


class InfoBatch(TrainHook):
    """A trainer hook: `plan_epoch(epoch) -> (indices, weights)`, and `observe(idx, logits, y)` updates the scores.

    `used[e - 1]` is the number of samples epoch e trained on (one host sync per epoch, for it). `options` are the
    ranking scorer's `[scoring.NAME]` options; `label_smoothing` is the trainer's, so that the loss ranking is the
    training loss itself, as the reference's `update(loss)` records it.
    """

    def __init__(self, n: int, epochs: int, ratio: float = 0.5, delta: float = 0.875, score: str = "loss",
                 seed: int = 0, device: torch.device | str = "cpu", options: dict[str, Any] | None = None,
                 label_smoothing: float = 0.0):
        self.n, self.epochs, self.ratio, self.delta = n, epochs, ratio, delta
        self.keep = keep_fraction(ratio)
        scorer = check_scorer(score)
        resolved = {k: v for k, v in check_scorer_options(score, options or {}).items() if k not in SURROGATE_OPTIONS}
        # a training scorer's observer keeps its own statistics; a batch scorer's latest value lives in self.scores
        self.observer = _load(scorer.observer)(n, device, **resolved) if scorer.kind == "training" else None
        # an observer that is a hook has a pass of its own (dynamic uncertainty's eval forward): it gets every step
        self.hook = self.observer if isinstance(self.observer, TrainHook) else None
        self.score = None if self.observer is not None else _load(scorer.fn)
        self.options = {} if self.observer is not None else resolved
        self.label_smoothing = label_smoothing if score == "loss" else 0.0
        self.scores = torch.full((n,), 3.0, device=device)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.used: list[int] = []

    def prunes(self, epoch: int) -> bool:
        """Whether epoch `epoch` (from 1) prunes: while epoch ≤ δ·E, the reference's `iterations > stop_prune` test."""
        return epoch <= self.delta * self.epochs

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One draw of the rule on the current scores: kept indices (sorted) and their loss weights."""
        well = self.scores < self.scores.mean()
        candidates = torch.nonzero(well).squeeze(1)
        count = int(self.keep * len(candidates))  # the reference's int(keep_ratio * len(well_learned_indices))
        order = torch.randperm(len(candidates), device=candidates.device, generator=self.generator)
        keep = ~well
        keep[candidates[order[:count]]] = True
        kept = torch.nonzero(keep).squeeze(1)
        weights = torch.where(well[kept], 1.0 / self.keep, 1.0)
        return kept, weights

    def start(self, state: TrainStart) -> None:
        if self.hook is not None:
            self.hook.start(state)

    def plan_epoch(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.prunes(epoch) or self.keep == 1.0:
            self.used.append(self.n)
            return torch.arange(self.n, device=self.scores.device), None
        if self.observer is not None and epoch > 1:  # before any step the statistics are all equal: no pruning
            self.scores = torch.as_tensor(self.observer.scores(), device=self.scores.device).float()
        kept, weights = self.draw()
        self.used.append(len(kept))
        return kept, weights

    __call__ = plan_epoch  # the `plan_epoch=` keyword of the trainer before hooks

    def weigh(self, idx: torch.Tensor) -> None:
        if self.hook is not None:
            self.hook.weigh(idx)  # its own forward, before the update; it weighs nothing

    def observe(self, idx: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        if self.hook is not None:
            self.hook.observe(idx, logits, y)
        elif self.observer is not None:
            self.observer(idx, logits, y)
        elif self.label_smoothing:
            self.scores[idx] = nn.functional.cross_entropy(logits.float(), y, reduction="none",
                                                           label_smoothing=self.label_smoothing)
        else:
            self.scores[idx] = self.score(None, None, y, logits.float(), **self.options).to(self.scores.dtype)
