"""The closed-form batch scores of the registry: functions of a surrogate's logits and the labels."""
from __future__ import annotations

import torch
from torch import nn


def loss_score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy of the surrogate (Jiang et al. 2019, "biggest losers")."""
    return nn.functional.cross_entropy(logits, y, reduction="none")


def el2n_score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """‖softmax(f(x)) − onehot(y)‖₂ of one surrogate; the registry's `el2n` averages it over K."""
    error = torch.softmax(logits, dim=1)
    error[torch.arange(len(y), device=y.device), y] -= 1
    return torch.linalg.vector_norm(error, dim=1)
