"""Training-dynamics scores (AUM, TDDS, dynamic uncertainty): trainer observers with running statistics.

Like `forgetting`, each observer reads the logits the trainer computes for its own
step (train mode, augmented input, before the update), so it costs no extra
forward. "Epoch j" of a sample is its j-th appearance in a minibatch: the trainer
shows every sample once per epoch, and counting per sample stays right when a
`steps` budget ends an epoch early. State is a few (N,) or (N, window) device
tensors, never N × C × T, and nothing syncs with the host until `scores()`.
"""
from __future__ import annotations

import numpy as np
import torch


def _margin(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Assigned-class value minus the largest other value, per row."""
    assigned = logits.gather(1, targets[:, None]).squeeze(1)
    others = logits.scatter(1, targets[:, None], float("-inf"))
    return assigned - others.max(1).values


class AUM:
    """Area under the margin (Pleiss et al., NeurIPS 2020; asappresearch/aum, `aum/aum.py`), negated.

    The margin is the assigned-class logit minus the largest other logit on the
    sample's minibatch forward, averaged over the epochs it was seen in; negated so
    that higher means harder (the paper flags low-AUM samples as mislabelled).
    `margin="softmax"` (the scorer option; `aum_softmax` is an alias) is the CCS repository's variant (haizhongzheng/Coverage-centric-
    coreset-selection, `generate_importance_score.py`), the same margin on softmax
    probabilities. Differences: no threshold samples (the paper's extra fake class
    serves to pick a cut-off, which the strategies here do by budget instead).
    """

    def __init__(self, n: int, device: torch.device | str, margin: str = "logit"):
        if margin not in ("logit", "softmax"):
            raise ValueError(f"AUM margin {margin!r}: use 'logit' or 'softmax'")
        self.softmax = margin == "softmax"
        self.total = torch.zeros(n, dtype=torch.float64, device=device)
        self.seen = torch.zeros(n, dtype=torch.int64, device=device)

    def __call__(self, idx: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        values = logits.double()
        if self.softmax:
            values = values.softmax(1)
        self.total.index_add_(0, idx, _margin(values, targets))
        self.seen.index_add_(0, idx, torch.ones_like(idx))

    def scores(self) -> np.ndarray:
        """−mean margin so far; a sample never seen gets 0."""
        return (-self.total / self.seen.clamp(min=1)).cpu().numpy()


def aum_softmax(n: int, device: torch.device | str) -> AUM:
    """AUM on softmax probabilities, as the CCS repository computes it (`aum` with margin = "softmax")."""
    return AUM(n, device, margin="softmax")


class DynamicUncertainty:
    """Dynamic uncertainty (He et al., CVPR 2024; BAAI-DCAI/Dataset-Pruning, `dynunc` in its scoring script).

    The target-class probability p_j of each epoch j; the standard deviation
    (unbiased, as torch's `std`) of p over every sliding window of `window`
    consecutive epochs, averaged over the windows. Running form: a ring of the last
    `window` probabilities per sample and a running sum of the window deviations.
    Differences: the reference's constant factor 10 is dropped (it changes no
    ranking); before `window` epochs are seen, the one window of all epochs so far
    is used (at least 2), so early score epochs still rank.
    """

    def __init__(self, n: int, device: torch.device | str, window: int = 10):
        self.window = window
        self.ring = torch.zeros(n, window, dtype=torch.float64, device=device)
        self.seen = torch.zeros(n, dtype=torch.int64, device=device)
        self.total = torch.zeros(n, dtype=torch.float64, device=device)

    def __call__(self, idx: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        p = logits.double().softmax(1).gather(1, targets[:, None]).squeeze(1)
        slot = self.seen[idx] % self.window
        self.ring[idx, slot] = p
        self.seen[idx] += 1
        full = self.seen[idx] >= self.window
        stds = self.ring[idx].std(1)
        self.total.index_add_(0, idx, torch.where(full, stds, torch.zeros_like(stds)))

    def scores(self) -> np.ndarray:
        seen = self.seen
        windows = (seen - self.window + 1).clamp(min=0)
        full = self.total / windows.clamp(min=1)
        # fewer epochs than a window: the deviation of all of them (the ring holds them in slots 0..seen-1)
        cols = torch.arange(self.window, device=seen.device)
        mask = (cols[None, :] < seen[:, None]).double()
        count = mask.sum(1)
        mean = (self.ring * mask).sum(1) / count.clamp(min=1)
        var = (((self.ring - mean[:, None]) * mask) ** 2).sum(1) / (count - 1).clamp(min=1)
        partial = torch.where(count >= 2, var.sqrt(), torch.zeros_like(var))
        return torch.where(windows > 0, full, partial).cpu().numpy()


class TDDS:
    """Temporal dual-depth scoring (Zhang et al., CVPR 2024; zhangxin-xd/Dataset-Pruning-TDDS,
    `importance_evaluation.py`).

    Over the first `trajectory` epochs: d_j = Σ_c |p_{j+1,c} (log p_{j+1,c} − log p_{j,c})|
    between consecutive epochs' softmax outputs; for each window k of `window`
    epochs (window − 1 values d), the L2 norm of d minus its window mean, weighted
    by decay · (1 − decay)^(trajectory − window − k); the score is the sum over
    windows (defaults 10, 10 and 0.9, the reference's). Running form: the previous
    epoch's probabilities (N × C) and a ring of the last window − 1 values of d.
    Differences: before `trajectory` epochs are seen, the weights use the epochs
    seen so far as the trajectory, and with fewer than `window` the one window of
    all of them; epochs after the trajectory are not counted, as in the reference.
    """

    def __init__(self, n: int, device: torch.device | str, num_classes: int | None = None, window: int = 10,
                 trajectory: int = 10, decay: float = 0.9):
        self.window, self.trajectory, self.decay = window, trajectory, decay
        self.prev: torch.Tensor | None = None  # (N, C), allocated at the first batch (C from the logits)
        self.n, self.device = n, device
        self.seen = torch.zeros(n, dtype=torch.int64, device=device)
        self.ring = torch.zeros(n, max(1, window - 1), dtype=torch.float64, device=device)
        self.total = torch.zeros(n, dtype=torch.float64, device=device)  # Σ_k norm_k (1 − decay)^(−k)

    def __call__(self, idx: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        keep = self.seen[idx] < self.trajectory
        idx, logits = idx[keep], logits[keep]
        if self.prev is None:
            self.prev = torch.zeros(self.n, logits.shape[1], dtype=torch.float64, device=self.device)
        p = logits.double().softmax(1)
        seen = self.seen[idx]
        later = seen >= 1
        d = (p * (torch.log(p + 1e-8) - torch.log(self.prev[idx] + 1e-8))).abs().sum(1)
        slot = (seen - 1).clamp(min=0) % self.ring.shape[1]
        rows = idx[later]
        self.ring[rows, slot[later]] = d[later]
        self.prev[idx] = p
        self.seen[idx] = seen + 1
        k = seen + 1 - self.window  # the window that just completed ends at this epoch
        done = later & (k >= 0)
        norms = self._window_norm(self.ring[idx[done]])
        weight = (1 - self.decay) ** (-k[done].double())
        self.total.index_add_(0, idx[done], norms * weight)

    @staticmethod
    def _window_norm(d: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(d - d.mean(1, keepdim=True), dim=1)

    def scores(self) -> np.ndarray:
        seen = self.seen.double()
        windows = self.seen - self.window + 1
        # weights use the trajectory seen so far: decay (1 − decay)^(T − W − k) = decay (1 − decay)^(T − W) (1 − decay)^(−k)
        full = self.total * self.decay * (1 - self.decay) ** (seen - self.window)
        cols = torch.arange(self.ring.shape[1], device=self.seen.device)
        mask = (cols[None, :] < (self.seen - 1)[:, None]).double()
        count = mask.sum(1)
        mean = (self.ring * mask).sum(1) / count.clamp(min=1)
        partial = self.decay * (((self.ring - mean[:, None]) * mask) ** 2).sum(1).sqrt()
        return torch.where(windows > 0, full, partial).cpu().numpy()
