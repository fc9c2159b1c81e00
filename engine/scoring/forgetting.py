"""Forgetting events (Toneva et al. 2019), counted while a surrogate trains.

A forgetting event is a transition from correctly to incorrectly classified
between two consecutive minibatches a sample appears in, judged on the logits
the trainer computes for its own step anyway (train mode, augmented input, before
the update), so counting costs no extra forward. The counter is a trainer
`BatchObserver`: all state stays in device tensors, updated by index per batch,
with no host sync until the counts are read at a checkpoint.

Samples never classified correctly in the counted epochs are the hardest of all
("never learned", infinitely forgettable in the paper). As a finite stand-in that
keeps the order and can be averaged over surrogates they get the run's maximum
count + 1: more than any sample that was learned. `never_learned = "zero"` leaves
them at 0 instead, as DeepCore's `deepcore/methods/forgetting.py` does (there they
rank with the never-forgotten).
"""
from __future__ import annotations

import numpy as np
import torch


class ForgettingCounter:
    """BatchObserver counting correct → incorrect transitions per dataset index."""

    def __init__(self, n: int, device: torch.device | str, never_learned: str = "max_plus_one"):
        if never_learned not in ("max_plus_one", "zero"):
            raise ValueError(f"forgetting never_learned {never_learned!r}: use 'max_plus_one' or 'zero'")
        self.never_learned = never_learned
        self.correct = torch.zeros(n, dtype=torch.bool, device=device)  # at the sample's previous appearance
        self.learned = torch.zeros(n, dtype=torch.bool, device=device)  # correct at least once
        self.counts = torch.zeros(n, dtype=torch.int32, device=device)

    def __call__(self, idx: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        now = logits.argmax(1) == targets
        self.counts[idx] += (self.correct[idx] & ~now).int()
        self.correct[idx] = now
        self.learned[idx] |= now

    def scores(self) -> np.ndarray:
        """Counts so far as floats; never-learned samples get the maximum count + 1 (or 0)."""
        counts = self.counts.cpu().numpy().astype(np.float32)
        if self.never_learned == "zero":
            return counts  # a never-learned sample was never correct, so it was never forgotten: 0
        learned = self.learned.cpu().numpy()
        counts[~learned] = (counts[learned].max() if learned.any() else 0.0) + 1.0
        return counts
