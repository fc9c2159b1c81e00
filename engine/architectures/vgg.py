"""VGG16 with BatchNorm for small images (Simonyan and Zisserman 2015), CIFAR variant: vgg16_bn.

As in kuangliu/pytorch-cifar (models/vgg.py) and DeepCore (deepcore/nets/vgg.py):
thirteen 3×3 conv-BN-ReLU layers in five stages (64, 128, 256, 512, 512) with
2×2 max-pools, and one Linear layer on the 512 features instead of ImageNet's
three 4096-wide ones. Differences: the pools use ceil_mode and the features end
with global average pooling, so inputs other than 32 px (MNIST's 28, 64) work;
at 32 px both are the identity of the reference's layers.
"""
from __future__ import annotations

from torch import nn

from .common import Classifier

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_bn(input_shape: tuple[int, int, int], num_classes: int) -> Classifier:
    layers: list[nn.Module] = []
    cin = input_shape[0]
    for v in VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            cin = v
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), nn.Linear(cin, num_classes))
