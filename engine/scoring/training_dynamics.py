"""Training-dynamics scores (AUM, TDDS, dynamic uncertainty): trainer observers with running statistics.

Like `forgetting`, AUM and TDDS read the logits the trainer computes for its own
step (train mode, augmented input, before the update), so they cost no extra
forward; dynamic uncertainty by default reads those of a separate eval-mode
forward of the un-augmented batch at the same step, as its reference does
(`EvalForward`, a trainer hook). "Epoch j" of a sample is its j-th appearance in a minibatch: the trainer
shows every sample once per epoch, and counting per sample stays right when a
`steps` budget ends an epoch early. State is a few (N,) or (N, window) device
tensors, never N × C × T, and nothing syncs with the host until `scores()`.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..train_hooks import TrainHook, TrainStart
from ..trainer import to_model_layout


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
    """Dynamic uncertainty (He et al., CVPR 2024; BAAI-DCAI/Dataset-Pruning, `ImageNet/get_coreset.py`).

    p_j, the target-class probability of the sample's j-th epoch; the standard
    deviation (unbiased, as torch's `std`) of p over each sliding window of `window`
    consecutive epochs, averaged over the windows, as the reference computes it from
    its per-epoch files: the window that ends at the last epoch seen is skipped (its
    `idx < len - 1`), so T epochs give T − W windows, those ending at epochs W..T − 1.
    Running form: a ring of the last `window` probabilities per sample; when epoch j
    arrives, the window that ends at epoch j − 1 is complete and not the last, and
    its deviation is added before p_j is written. This class records the logits it
    is called with (the trainer's own: train mode, augmented input); `dynamic_uncertainty`
    puts it behind `EvalForward` for the reference's eval-mode pass. Differences: the
    reference's constant factor 10 is dropped (it changes no ranking); with T ≤ W
    epochs (no window the reference counts) the score is the deviation of the first
    T − 1 epochs (0 below 3 epochs), so early score epochs still rank.
    """

    def __init__(self, n: int, device: torch.device | str, window: int = 10):
        self.window = window
        self.ring = torch.zeros(n, window, dtype=torch.float64, device=device)
        self.seen = torch.zeros(n, dtype=torch.int64, device=device)
        self.total = torch.zeros(n, dtype=torch.float64, device=device)

    def __call__(self, idx: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        p = logits.double().softmax(1).gather(1, targets[:, None]).squeeze(1)
        seen = self.seen[idx]
        ring = self.ring[idx]  # epochs seen - W + 1 .. seen: the window ending at the previous epoch, once full
        self.total[idx] += torch.where(seen >= self.window, ring.std(1), torch.zeros_like(p))
        self.ring[idx, seen % self.window] = p
        self.seen[idx] = seen + 1

    def scores(self) -> np.ndarray:
        seen = self.seen
        windows = seen - self.window  # windows counted: those ending at epochs W .. T - 1
        full = self.total / windows.clamp(min=1)
        # T <= W: the deviation of the first T - 1 epochs (slots 0 .. T - 2 of the ring, which has not wrapped)
        cols = torch.arange(self.window, device=seen.device)
        mask = (cols[None, :] < (seen - 1)[:, None]).double()
        count = mask.sum(1)
        mean = (self.ring * mask).sum(1) / count.clamp(min=1)
        var = (((self.ring - mean[:, None]) * mask) ** 2).sum(1) / (count - 1).clamp(min=1)
        partial = torch.where(count >= 2, var.sqrt(), torch.zeros_like(var))
        return torch.where(windows > 0, full, partial).cpu().numpy()


class EvalForward(TrainHook):
    """Feeds an observer the logits of a separate eval-mode forward of each trained batch, before the update.

    BAAI's `main_and_produce.py` (`train_one_epoch`) does this at every step: after
    the training forward of the augmented batch and before the optimizer step, the
    model (eval mode for BatchNorm networks) scores the batch's un-augmented images
    without gradients, and dynamic uncertainty reads those probabilities. Here the
    trainer's `weigh` step is that moment (after the training forward, before the
    backward); the model is put in eval mode for the forward and back in train mode
    after it. It weighs nothing. One extra forward per step.
    """

    def __init__(self, observer: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]):
        self.observer = observer
        self.model: torch.nn.Module | None = None
        self.dataset = None

    def start(self, state: TrainStart) -> None:
        self.model, self.dataset = state.model, state.dataset

    @torch.no_grad()
    def weigh(self, idx: torch.Tensor) -> None:
        model, ds = self.model, self.dataset
        was_training = model.training
        model.eval()
        logits = model(to_model_layout(ds.normalize(ds.images(idx))))
        model.train(was_training)
        self.observer(idx, logits, ds.y_train[idx])

    def scores(self) -> np.ndarray:
        return self.observer.scores()


def dynamic_uncertainty(n: int, device: torch.device | str, window: int = 10,
                        logits: str = "eval") -> DynamicUncertainty | EvalForward:
    """The `dynamic_uncertainty` observer: from a separate eval-mode forward of each batch (the reference), or
    with `logits = "train"` from the trainer's own logits (no extra forward)."""
    if logits not in ("eval", "train"):
        raise ValueError(f"dynamic uncertainty logits {logits!r}: use 'eval' or 'train'")
    stat = DynamicUncertainty(n, device, window)
    return stat if logits == "train" else EvalForward(stat)


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
