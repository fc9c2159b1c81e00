"""Uncertainty of a surrogate's prediction (Coleman et al., ICLR 2020, "Selection via Proxy").

Reference code: PatrickZH/DeepCore, `deepcore/methods/uncertainty.py`. Batch
scorers of the one-pass scoring (softmax of the logits it already has); the
registry averages each over the K surrogates. Signs follow this project's
convention, higher = more uncertain: DeepCore keeps −max p, Σ p log p and
p₁ − p₂ and takes the smallest; here they are 1 − max p, −Σ p log p and
1 − (p₁ − p₂), the same order. DeepCore adds 1e-6 inside the log; here
log_softmax is used, which is exact.
"""
from __future__ import annotations

import torch


def entropy_score(model, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """−Σ_c p_c log p_c of softmax(f(x))."""
    logp = logits.log_softmax(1)
    return -(logp.exp() * logp).sum(1)


def least_confidence_score(model, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """1 − max_c p_c."""
    return 1 - logits.softmax(1).max(1).values


def margin_score(model, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """1 − (p₁ − p₂), the gap between the two most probable classes, subtracted from 1."""
    top = logits.softmax(1).topk(2, dim=1).values
    return 1 - (top[:, 0] - top[:, 1])
