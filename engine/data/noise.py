"""Label noise: flip a seeded fraction of the training labels, each to another class.

The flip is deterministic in (labels, fraction, seed), so any process (a Ray
worker retraining on the noisy labels) re-draws exactly the driver's.
"""
from __future__ import annotations

import numpy as np
import torch

from .dataset import Dataset


def flip_labels(labels: np.ndarray, fraction: float, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, sorted flipped indices): round(p·n) samples, each moved to a different class."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=np.int64)
    flipped = np.sort(rng.choice(len(labels), size=round(fraction * len(labels)), replace=False))
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, num_classes, size=len(flipped))) % num_classes
    return noisy, flipped


def noisy_dataset(dataset: Dataset, noisy: np.ndarray) -> Dataset:
    """A copy of `dataset` with other training labels; images are shared, not copied."""
    y = torch.as_tensor(noisy, dtype=dataset.y_train.dtype).to(dataset.device)
    return dataset.replace(y_train=y)


def with_label_noise(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, np.ndarray]:
    """The data set with its labels flipped as `flip_labels` draws them, and the flipped indices."""
    noisy, flipped = flip_labels(dataset.y_train.cpu().numpy(), fraction, dataset.num_classes, seed)
    return noisy_dataset(dataset, noisy), flipped
