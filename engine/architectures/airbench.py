"""`airbench`: the network of Keller Jordan's airbench94 (2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU"),
written from its published description (KellerJordan/cifar10-airbench, airbench94.py; no code copied).

A 2×2 conv whose frozen weights whiten the training set's 2×2 patches (the
eigenvectors of their second-moment matrix PᵀP/n, uncentred as airbench's, over
√(eigenvalue + 5e-4), and their negatives:
2·C·4 = 24 filters for RGB) and whose bias is learnt; GELU; three blocks of
widths 64, 256, 256, each conv3×3 → max-pool 2 → BN → GELU → conv3×3 → BN → GELU,
with BatchNorm of momentum 0.6 (torch's 0.4), eps 1e-12 and frozen scale, and
dirac (identity) init of the first filters of every 3×3 conv; a 3×3 max-pool;
one bias-free Linear layer on the features scaled by 1/9.

The whitening needs the data: `init_from_data(x)` (called by the trainer on the
normalised training images before the first step; once, a buffer remembers it).
Differences: the final pool is adaptive (= MaxPool(3) at 32 px), so 28 and 64 px
work; the 1/9 scale sits before the Linear layer (the same logits), so `head` is
a plain Linear.

`RECIPE` is airbench94's training as TrainConfig fields (the `airbench-cifar10`
preset uses it): batch 1024, Nesterov momentum 0.85, label smoothing 0.2, TTA
level 2 (`tta = "flip_translate"`), and its decoupled lr 11.5 / weight decay 0.0153
(per 1024 examples, on a summed loss) turned into this trainer's mean-loss terms:
lr = 11.5 / (1 + 1/(1 − 0.85)) = 1.5 and weight decay 0.0153·1024 / (1024·(1 + 1/0.15)) / 1.5
= 1.33e-3, so each step decays the weights by 2.0e-3 as airbench's does. Not
reproduced: its 64× learning rate of BatchNorm biases, the lookahead/EMA, the
whitening bias frozen after 3 epochs, alternating (not random) flips, translate-2
with reflect padding (here the set's crop with 4-pixel zero padding), 9.9 epochs
(here 10) and its triangular schedule 0.2 → 1 at 23 % → 0.07 (here onecycle 0.1 →
1 at 23 % → 0); weight decay skips biases and norm parameters, as for every model.
"""
from __future__ import annotations

import torch
from torch import nn

from .common import Classifier

WIDTHS = (64, 256, 256)
WHITEN_EPS = 5e-4
_MOMENTUM = 0.85
RECIPE = {"epochs": 10, "batch_size": 1024, "lr": round(11.5 / (1 + 1 / (1 - _MOMENTUM)), 6), "momentum": _MOMENTUM,
          "nesterov": True, "weight_decay": round(0.0153 / (1 + 1 / (1 - _MOMENTUM)) / 1.5, 8),
          "label_smoothing": 0.2, "schedule": "onecycle", "warmup": 0.23, "tta": "flip_translate"}


def recipe(batch_size: int = 1024) -> dict:
    """RECIPE at another batch size, in airbench's decoupled form: the learning rate per example (1.5 / 1024)
    stays, so lr = 1.5·B/1024; the weight decay per step then scales with B as airbench's does."""
    return {**RECIPE, "batch_size": batch_size, "lr": RECIPE["lr"] * batch_size / 1024}


def _bn(c: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c, eps=1e-12, momentum=0.4)
    bn.weight.requires_grad_(False)
    return bn


def _conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:cin])  # the first cin filters start as the identity
    return conv


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class Airbench(Classifier):
    def __init__(self, channels: int, num_classes: int):
        whiten = nn.Conv2d(channels, 2 * channels * 4, 2, bias=True)
        whiten.weight.requires_grad_(False)
        layers: list[nn.Module] = [whiten, nn.GELU()]
        cin = whiten.out_channels
        for width in WIDTHS:
            layers += [_conv(cin, width), nn.MaxPool2d(2), _bn(width), nn.GELU(),
                       _conv(width, width), _bn(width), nn.GELU()]
            cin = width
        layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), Scale(1 / 9)]
        super().__init__(nn.Sequential(*layers), nn.Linear(cin, num_classes, bias=False))
        self.register_buffer("whitened", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Whitening weights from 2×2 patches of the (normalised) training images x, once."""
        if bool(self.whitened):
            return
        whiten: nn.Conv2d = self.features[0]
        c = x.shape[1]
        patches = x.double().unfold(2, 2, 1).unfold(3, 2, 1)  # (N, C, H-1, W-1, 2, 2)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * 4)
        values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        weight = (vectors.T / torch.sqrt(values.clamp_min(0) + WHITEN_EPS)[:, None]).view(-1, c, 2, 2)
        whiten.weight.copy_(torch.cat([weight, -weight]).to(whiten.weight.dtype))
        self.whitened.fill_(True)


def airbench(input_shape: tuple[int, int, int], num_classes: int) -> Airbench:
    return Airbench(input_shape[0], num_classes)
