"""Wide ResNets (Zagoruyko and Komodakis 2016, "Wide Residual Networks"): wrn16_8, wrn28_10.

As in the authors' szagoruyko/wide-residual-networks (pytorch/resnet.py) and
xternalz/WideResNet-pytorch: depth d = 6n + 4, three groups of n pre-activation
blocks (BN-ReLU-conv3×3, BN-ReLU-conv3×3) of widths 16k, 32k, 64k after a 3×3
conv of 16 channels, 1×1 projection shortcuts where the shape changes, a final
BN-ReLU, global average pooling and one Linear layer. Dropout between the convs
is 0 (the paper's runs without dropout). Difference: torch's default conv init
(kaiming-uniform) instead of the reference's He-normal, in the initial weights only.
"""
from __future__ import annotations

import torch
from torch import nn

from .common import Classifier


class WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = torch.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(torch.relu(self.bn2(y)))
        return y + (self.shortcut(o) if self.shortcut is not None else x)


def wide_resnet(input_shape: tuple[int, int, int], num_classes: int, depth: int, k: int) -> Classifier:
    n = (depth - 4) // 6
    widths = [16, 16 * k, 32 * k, 64 * k]
    layers: list[nn.Module] = [nn.Conv2d(input_shape[0], widths[0], 3, 1, 1, bias=False)]
    cin = widths[0]
    for i, cout in enumerate(widths[1:]):
        for j in range(n):
            layers.append(WideBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
            cin = cout
    layers += [nn.BatchNorm2d(cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), nn.Linear(cin, num_classes))


def wrn16_8(input_shape: tuple[int, int, int], num_classes: int) -> Classifier:
    """WRN-16-8: 2 blocks per group, widths 128, 256, 512 (11M parameters)."""
    return wide_resnet(input_shape, num_classes, 16, 8)


def wrn28_10(input_shape: tuple[int, int, int], num_classes: int) -> Classifier:
    """WRN-28-10: 4 blocks per group, widths 160, 320, 640 (36.5M parameters)."""
    return wide_resnet(input_shape, num_classes, 28, 10)
