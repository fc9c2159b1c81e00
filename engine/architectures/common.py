"""What every built-in network is: `Classifier(features, head)`, so `embed(x)` is the penultimate layer."""
from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self, features: nn.Module, head: nn.Linear):
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
