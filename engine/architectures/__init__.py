"""The built-in networks, one module per family, and `build_model` (by registry name, or `timm:`/`torchvision:`).

Every built-in model is `head(features(x))` (common.Classifier): `features` ends
at the penultimate layer (the embedding that diversity-aware selection clusters)
and `head` is one Linear layer. Input shape and class count come from the data set.
"""
from __future__ import annotations

import torch
from torch import nn

from ..nets import ModelBuilder, model_builder
from .airbench import airbench
from .basic import cnn, mlp
from .common import Classifier
from .resnet import BasicBlock, Bottleneck, resnet18, resnet34, resnet50
from .vgg import vgg16_bn
from .wrn import wrn16_8, wrn28_10

__all__ = ["Classifier", "BasicBlock", "Bottleneck", "airbench", "build_model", "cnn", "mlp", "resnet18", "resnet34",
           "resnet50", "vgg16_bn", "wrn16_8", "wrn28_10"]


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int, seed: int | None = None) -> nn.Module:
    """Build a model by name; with a seed, its initial weights depend on that seed alone."""
    builder: ModelBuilder = model_builder(name)
    if seed is None:
        return builder(tuple(input_shape), num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(tuple(input_shape), num_classes)
