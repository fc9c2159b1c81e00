"""The built-in networks (`cnn`, the seed's MNIST network; `resnet18`, CIFAR variant; `mlp`) and `build_model`.

Every model is `head(features(x))`: `features` ends at the penultimate layer
(the embedding that diversity-aware selection clusters) and `head` is one
Linear layer. Input shape and class count come from the data set.
"""
from __future__ import annotations

import torch
from torch import nn

from .nets import MODELS, ModelBuilder


class Classifier(nn.Module):
    def __init__(self, features: nn.Module, head: nn.Linear):
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


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


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def resnet18(input_shape: tuple[int, int, int], num_classes: int, width: int = 64) -> Classifier:
    """ResNet18 for 32x32 images: 3x3 stem with stride 1, no max-pool, BatchNorm."""
    c = input_shape[0]
    layers: list[nn.Module] = [nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    cin = width
    for i, cout in enumerate([width, 2 * width, 4 * width, 8 * width]):
        for j in range(2):
            layers.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), nn.Linear(cin, num_classes))


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int, seed: int | None = None) -> nn.Module:
    """Build a model by name; with a seed, its initial weights depend on that seed alone."""
    builder: ModelBuilder = MODELS.check(name)
    if seed is None:
        return builder(tuple(input_shape), num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(tuple(input_shape), num_classes)
