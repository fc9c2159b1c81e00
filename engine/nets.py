"""The model registry: a name -> builder `(input_shape, num_classes) -> nn.Module`.

Imports no torch (the config validator reads it); the built-in networks live in
`architectures/` (one module per family) and load when first built. `timm:NAME`
and `torchvision:NAME` name any model of those libraries (architectures/external.py).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from .errors import ConfigError
from .registry import Ref, Registry, implementation

if TYPE_CHECKING:
    from torch import nn

ModelBuilder = Callable[[tuple[int, int, int], int], "nn.Module"]

MODELS: Registry[ModelBuilder] = Registry("model")
for _name in ("cnn", "resnet18", "mlp", "resnet34", "resnet50", "wrn16_8", "wrn28_10", "vgg16_bn", "airbench"):
    MODELS.add(_name, Ref(f"engine.architectures:{_name}"))
PREFIXES = {"timm:": Ref("engine.architectures.external:timm_model"),
            "torchvision:": Ref("engine.architectures.external:torchvision_model")}
NAME_CHECKS = {"timm:": Ref("engine.architectures.external:check_timm_name"),
               "torchvision:": Ref("engine.architectures.external:check_torchvision_name")}
# The smallest height and width each built-in network takes (a conv or pool with no pixels left below it), so the
# pre-run check needs no torch for them; tests/faults/test_data_faults.py holds it to a dry forward of each.
SMALLEST_SIDE = {"cnn": 16, "airbench": 9, "mlp": 1, "resnet18": 1, "resnet34": 1, "resnet50": 1, "wrn16_8": 1,
                 "wrn28_10": 1, "vgg16_bn": 1}
_BUILTIN = {name: MODELS[name] for name in SMALLEST_SIDE}


def register_model(name: str, builder: ModelBuilder | str) -> ModelBuilder:
    """Add a model builder `(input_shape, num_classes) -> nn.Module` (or "module:function"); usable by name in
    configs, the CLI and the TUI."""
    return MODELS.add(name, implementation(builder))


def model_names() -> list[str]:
    return list(MODELS) + [prefix + "NAME" for prefix in PREFIXES]


def check_model_name(name: str) -> None:
    """A registered name, or a library prefix with a name (checked against the library when built)."""
    model_builder(name)


def check_library_name(name: str) -> None:
    """For `timm:NAME` and `torchvision:NAME`: the library has that model (imports it, and torch); else nothing."""
    for prefix, ref in NAME_CHECKS.items():
        if name.startswith(prefix) and name[len(prefix):]:
            ref(name[len(prefix):])


def smallest_side(name: str) -> int | None:
    """The smallest image height and width a built-in model takes; None for any other model (a plugin's, a
    library's, or a built-in name registered again), which only a dry forward can tell."""
    return SMALLEST_SIDE[name] if name in _BUILTIN and MODELS.get(name) is _BUILTIN[name] else None


def model_builder(name: str) -> ModelBuilder:
    for prefix, ref in PREFIXES.items():
        if name.startswith(prefix):
            if not name[len(prefix):]:
                raise ConfigError(f"model {prefix!r} needs a name, as in {prefix}resnet18")
            return partial(ref, name[len(prefix):])
    return MODELS.check(name)
