"""The model registry: a name -> builder `(input_shape, num_classes) -> nn.Module`.

Imports no torch (the config validator reads it); the built-in networks live in
`architectures.py` and load when first built.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .registry import Ref, Registry, implementation

if TYPE_CHECKING:
    from torch import nn

ModelBuilder = Callable[[tuple[int, int, int], int], "nn.Module"]

MODELS: Registry[ModelBuilder] = Registry("model")
for _name in ("cnn", "resnet18", "mlp"):
    MODELS.add(_name, Ref(f"engine.architectures:{_name}"))


def register_model(name: str, builder: ModelBuilder | str) -> ModelBuilder:
    """Add a model builder `(input_shape, num_classes) -> nn.Module` (or "module:function"); usable by name in
    configs, the CLI and the TUI."""
    return MODELS.add(name, implementation(builder))


def check_model_name(name: str) -> None:
    MODELS.check(name)
