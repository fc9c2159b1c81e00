"""InfoBatch's per-epoch plan (Qin et al., "InfoBatch: Lossless Training Speed Up by Unbiased Dynamic Data Pruning",
ICLR 2024; reference code NUS-HPC-AI-Lab/InfoBatch, `infobatch/infobatch.py`), as a trainer hook (plan the epoch,
observe the batch).

Each epoch, the samples whose latest score is below the mean ("well learned") are pruned, each with probability
r, and the kept well-learned ones have their loss scaled by 1/(1 - r), so the expected gradient is the full-data
one; from epoch ceil(δ·E) + 1 on (the last (1 - δ) of the epochs) every sample trains at weight 1. Scores start
equal (the reference's 3), so the first epoch is full; each trained sample's score is then its latest loss from
the training forward pass (a trainer observer), all on the device. The ranking score may instead be any registered
scorer the training forward gives (`dynamic.score`): a batch scorer of the logits (EL2N, entropy, margin, ...,
`fn(None, None, y, logits)`: it is shown no model and no input), its latest value per sample as for the loss, or a
`training` scorer's running statistic (forgetting, AUM, ...), read once per epoch from its observer; every score
is "higher = harder", so below the mean is "well learned" as for the loss. Differences from the reference: pruning is an
independent Bernoulli(r) draw per well-learned sample from a seeded generator (the reference's newer version does
the same with numpy's global RNG), and the learning-rate schedule follows the full-data epochs by fraction done
(the trainer's plan mode) instead of being re-planned for the reduced step count.
"""
from __future__ import annotations

import torch

from ..registry import Ref
from ..scoring.registry import check_scorer
from ..train_hooks import TrainHook


def _load(obj):
    return obj.load() if isinstance(obj, Ref) else obj


class InfoBatch(TrainHook):
    """A trainer hook: `plan_epoch(epoch) -> (indices, weights)`, and `observe(idx, logits, y)` updates the scores.

    `used[e - 1]` is the number of samples epoch e trained on (one host sync per epoch, for it).
    """

    def __init__(self, n: int, epochs: int, ratio: float = 0.5, delta: float = 0.875, score: str = "loss",
                 seed: int = 0, device: torch.device | str = "cpu"):
        self.n, self.epochs, self.ratio, self.delta = n, epochs, ratio, delta
        scorer = check_scorer(score)
        # a training scorer's observer keeps its own statistics; a batch scorer's latest value lives in self.scores
        self.observer = _load(scorer.observer)(n, device) if scorer.kind == "training" else None
        self.score = None if self.observer is not None else _load(scorer.fn)
        self.scores = torch.full((n,), 3.0, device=device)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.used: list[int] = []

    def prunes(self, epoch: int) -> bool:
        """Whether epoch `epoch` (from 1) prunes: the first δ of the epochs do."""
        return epoch - 1 < self.delta * self.epochs

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One draw of the rule on the current scores: kept indices (sorted) and their loss weights."""
        well = self.scores < self.scores.mean()
        pruned = well & (torch.rand(self.n, device=self.scores.device, generator=self.generator) < self.ratio)
        kept = torch.nonzero(~pruned).squeeze(1)
        weights = torch.where(well[kept], 1.0 / (1.0 - self.ratio), 1.0)
        return kept, weights

    def plan_epoch(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.prunes(epoch) or self.ratio == 0:
            self.used.append(self.n)
            return torch.arange(self.n, device=self.scores.device), None
        if self.observer is not None and epoch > 1:  # before any step the statistics are all equal: no pruning
            self.scores = torch.as_tensor(self.observer.scores(), device=self.scores.device).float()
        kept, weights = self.draw()
        self.used.append(len(kept))
        return kept, weights

    __call__ = plan_epoch  # the `plan_epoch=` keyword of the trainer before hooks

    def observe(self, idx: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        if self.observer is not None:
            self.observer(idx, logits, y)
        else:
            self.scores[idx] = self.score(None, None, y, logits.float()).to(self.scores.dtype)
