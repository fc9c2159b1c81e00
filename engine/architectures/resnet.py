"""CIFAR-style ResNets (He et al. 2016, "Deep Residual Learning for Image Recognition"): resnet18/34/50.

As in Kuang Liu's kuangliu/pytorch-cifar (models/resnet.py), which DeepCore
(PatrickZH/DeepCore, deepcore/nets/resnet.py) also uses: BasicBlock (18, 34) or
Bottleneck with expansion 4 (50), stages of 64·2^i channels, projection
shortcuts (1×1 conv + BatchNorm) where shape changes. The stem suits the input
size (our choice, written down in the README):
- up to 32 px: 3×3 conv, stride 1, no max-pool (the CIFAR stem);
- 33–64 px (Tiny-ImageNet): the same 3×3 conv with stride 2, so the stages see
  CIFAR's 32×32 maps and cost what they cost on CIFAR;
- larger: ImageNet's 7×7 stride-2 conv and 3×3 stride-2 max-pool.
"""
from __future__ import annotations

import torch
from torch import nn

from .common import Classifier


def shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    """The identity, or a strided 1x1 conv + BN where the block changes the shape."""
    if stride != 1 or cin != cout:
        return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    return nn.Sequential()


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + self.shortcut(x))


def stem(c: int, size: int, width: int) -> list[nn.Module]:
    """The first layers for `size`-pixel inputs (see the module docstring)."""
    if size <= 32:
        return [nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    if size <= 64:
        return [nn.Conv2d(c, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    return [nn.Conv2d(c, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]


def resnet(input_shape: tuple[int, int, int], num_classes: int, block, counts: list[int], width: int = 64) -> Classifier:
    c, h, w = input_shape
    layers: list[nn.Module] = stem(c, max(h, w), width)
    cin = width
    for i, n in enumerate(counts):
        planes = width * 2 ** i
        for j in range(n):
            layers.append(block(cin, planes, 2 if (i > 0 and j == 0) else 1))
            cin = planes * block.expansion
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), nn.Linear(cin, num_classes))


def resnet18(input_shape: tuple[int, int, int], num_classes: int, width: int = 64) -> Classifier:
    """ResNet18: BasicBlocks [2, 2, 2, 2]."""
    return resnet(input_shape, num_classes, BasicBlock, [2, 2, 2, 2], width)


def resnet34(input_shape: tuple[int, int, int], num_classes: int) -> Classifier:
    """ResNet34: BasicBlocks [3, 4, 6, 3]."""
    return resnet(input_shape, num_classes, BasicBlock, [3, 4, 6, 3])


def resnet50(input_shape: tuple[int, int, int], num_classes: int) -> Classifier:
    """ResNet50: Bottlenecks [3, 4, 6, 3], 2048 features."""
    return resnet(input_shape, num_classes, Bottleneck, [3, 4, 6, 3])
