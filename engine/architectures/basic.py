"""The seed's small networks: `cnn` (its MNIST network) and `mlp` (for tests)."""
from __future__ import annotations

import torch
from torch import nn

from .common import Classifier


def mlp(input_shape: tuple[int, int, int], num_classes: int, hidden: int = 64) -> Classifier:
    """A tiny two-layer perceptron, for tests."""
    c, h, w = input_shape
    return Classifier(nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU()), nn.Linear(hidden, num_classes))


def cnn(input_shape: tuple[int, int, int], num_classes: int) -> Classifier:
    """The seed's MNIST network: two 5x5 conv layers with max-pooling, then two fully connected layers."""
    c, h, w = input_shape
    features = nn.Sequential(
        nn.Conv2d(c, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
    )
    with torch.no_grad():
        flat = features(torch.zeros(1, c, h, w)).shape[1]
    features.append(nn.Linear(flat, 128))
    features.append(nn.ReLU())
    return Classifier(features, nn.Linear(128, num_classes))
