"""Any timm or torchvision model by name (`timm:NAME`, `torchvision:NAME`), randomly initialised, never downloaded.

Built with the data set's class count (and, for timm, its input channels and
image size where the model takes one). torchvision's models take 3 channels, so
grey images are repeated to 3. `embed(x)` is the input of the model's last
Linear layer (its classifier), captured by a hook, for the selection methods
that cluster embeddings.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


class External(nn.Module):
    """A library's model with `embed(x)`; `grey_to_rgb` repeats one channel to the three the model expects."""

    def __init__(self, model: nn.Module, grey_to_rgb: bool = False):
        super().__init__()
        self.model = model
        self.grey_to_rgb = grey_to_rgb
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        # kept out of the module tree: registered, the classifier would appear twice (as `model.…` and `_last`),
        # with tied parameters that torch.func's functional_call leaves wrapped after a vmap
        self.__dict__["_last"] = linears[-1] if linears else None

    @property
    def head(self) -> nn.Linear | None:
        """The classifier (the last Linear layer), as built-in models name it, for scorers that read the head."""
        return self.__dict__["_last"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.expand(-1, 3, -1, -1) if self.grey_to_rgb else x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self._last is None:
            raise ConfigError(f"{type(self.model).__name__} has no Linear classifier whose input could serve as the "
                              "embedding; pick another model for embedding-based selection")
        captured = []
        hook = self._last.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
        try:
            self.forward(x)
        finally:
            hook.remove()
        return captured[-1].flatten(1)


def _timm(name: str):
    try:
        import timm
    except ImportError:
        raise ConfigError(f"model 'timm:{name}' needs timm: pip install 'prunelab[timm]'") from None
    return timm


def check_timm_name(name: str) -> None:
    """ConfigError unless timm has a model `name` (timm installed)."""
    if not _timm(name).is_model(name):
        raise ConfigError(f"model 'timm:{name}': timm has no model {name!r}; see timm.list_models()")


def check_torchvision_name(name: str) -> None:
    """ConfigError unless torchvision has a model `name`."""
    import torchvision

    if name not in torchvision.models.list_models():
        raise ConfigError(f"model 'torchvision:{name}': torchvision has no model {name!r}; see "
                          "torchvision.models.list_models()")


def timm_model(name: str, input_shape: tuple[int, int, int], num_classes: int) -> External:
    timm = _timm(name)
    from ..scoring.gradnorm.groupnorm import register_timm_forms

    register_timm_forms()  # timm's own LayerNorm classes get the exact closed form too
    check_timm_name(name)
    c, h, w = input_shape
    try:  # ViTs and other fixed-size models take the image size; convnets do not
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=c, img_size=(h, w))
    except TypeError:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=c)
    return External(model)


def torchvision_model(name: str, input_shape: tuple[int, int, int], num_classes: int) -> External:
    import torchvision

    check_torchvision_name(name)
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    return External(model, grey_to_rgb=input_shape[0] == 1)
