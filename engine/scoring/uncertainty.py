"""Uncertainty of a surrogate's prediction (Coleman et al., ICLR 2020, "Selection via Proxy").

Reference code: PatrickZH/DeepCore, `deepcore/methods/uncertainty.py`. Batch
scorers of the one-pass scoring (the logits it already has); the registry
averages each over the K surrogates. Signs follow this project's convention,
higher = more uncertain: DeepCore scores the largest *logit* (least confidence),
Σ p log p (entropy) and p₁ − p₂ (margin) and, with its main.py's default
`balance = True`, keeps the smallest of each class; here they are −max z,
−Σ p log p and 1 − (p₁ − p₂), the same order. `least_confidence` with
`form = "probability"` is 1 − max p instead, the textbook least confidence
(Coleman et al.'s, on probabilities). DeepCore adds 1e-6 inside the log; here
log_softmax is used, which is exact.
"""
from __future__ import annotations

import torch


def entropy_score(model, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """−Σ_c p_c log p_c of softmax(f(x))."""
    logp = logits.log_softmax(1)
    return -(logp.exp() * logp).sum(1)


def least_confidence_score(model, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor,
                           form: str = "logit") -> torch.Tensor:
    """−max_c z_c, the largest logit negated (DeepCore); with form = "probability", 1 − max_c p_c."""
    if form == "probability":
        return 1 - logits.softmax(1).max(1).values
    return -logits.max(1).values


def margin_score(model, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """1 − (p₁ − p₂), the gap between the two most probable classes, subtracted from 1."""
    top = logits.softmax(1).topk(2, dim=1).values
    return 1 - (top[:, 0] - top[:, 1])
