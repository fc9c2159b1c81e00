"""The built-in networks, one module per family, and `build_model` (by registry name, or `timm:`/`torchvision:`).

Every built-in model is `head(features(x))` (common.Classifier): `features` ends
at the penultimate layer (the embedding that diversity-aware selection clusters)
and `head` is one Linear layer. Input shape and class count come from the data set.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import DataError
from ..nets import ModelBuilder, model_builder
from .airbench import airbench
from .basic import cnn, mlp
from .common import Classifier
from .resnet import BasicBlock, Bottleneck, resnet18, resnet34, resnet50
from .vgg import vgg16_bn
from .wrn import wrn16_8, wrn28_10

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "Classifier",
    "airbench",
    "build_model",
    "cnn",
    "mlp",
    "resnet18",
    "resnet34",
    "resnet50",
    "vgg16_bn",
    "wrn16_8",
    "wrn28_10",
]


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int, seed: int | None = None) -> nn.Module:
    """Build a model by name; with a seed, its initial weights depend on that seed alone."""
    builder: ModelBuilder = model_builder(name)
    shape = tuple(input_shape)
    try:
        if seed is None:
            model = builder(shape, num_classes)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = builder(shape, num_classes)
        if (name, shape) not in _FITS:
            _dry_forward(model, shape)
            _FITS.add((name, shape))
    except RuntimeError as e:  # a conv or pooling layer with no pixels left: say so before training, in one line
        if "size" not in str(e).lower():
            raise
        reason = str(e).strip().splitlines()[0]
        raise DataError(f"images of {'x'.join(map(str, shape))} (CxHxW) are too small for model {name!r} ({reason}); "
                        f"use a bigger data.options.size for an image folder, or another model") from None
    return model


_FITS: set[tuple] = set()  # (model name, input shape) pairs a dry forward has passed, once per process


def _dry_forward(model: nn.Module, shape: tuple[int, ...]) -> None:
    """One zero image through the model in eval mode (no batch statistics, no RNG), to find a too-small input."""
    training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    model.train(training)
