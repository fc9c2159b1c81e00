"""Gradient embeddings: exact last-layer per-sample gradients (p − onehot(y)) ⊗ [penultimate features, 1],
gathered batch by batch in the scoring pass; float16 on request, a seeded Gaussian projection above a memory bound."""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

DEFAULT_GRADIENT_MB = 1024.0  # above this, gradient embeddings are randomly projected to fit
DTYPES = {"float32": torch.float32, "float16": torch.float16}


def last_layer_gradients(features: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample ∂CE/∂(W, b) of the last linear layer z = W·e + b, flattened class-major: (n, C·(d + 1)).

    ∂CE/∂z = softmax(z) − onehot(y), so ∂CE/∂W = (p − onehot(y)) eᵀ and ∂CE/∂b = p − onehot(y):
    row c of the (C, d + 1) block is (p_c − [y = c])·[e, 1], the layout of [W | b].
    """
    delta = torch.softmax(logits, dim=1) - F.one_hot(y, logits.shape[1]).to(logits.dtype)
    augmented = torch.cat([features, torch.ones_like(features[:, :1])], dim=1)
    return (delta[:, :, None] * augmented[:, None, :]).flatten(1)


class GradientEmbeddings:
    """Collects gradient embeddings of n samples, stored in `dtype`, within `max_mb` megabytes.

    When n·C·(d + 1) values would not fit, each gradient is multiplied by a Gaussian matrix
    R (D × k, entries N(0, 1/k), seeded), k the largest width that fits: a Johnson–Lindenstrauss
    projection, as CRAIG/GradMatch implementations shrink gradients, which keeps inner
    products and distances within (1 ± ε) w.h.p. `projection` says which ("none" or "gaussian:k").
    """

    def __init__(self, n: int, device: torch.device, dtype: str = "float32", max_mb: float = DEFAULT_GRADIENT_MB,
                 seed: int = 0):
        self.n, self.device, self.dtype, self.max_mb, self.seed = n, device, DTYPES[dtype], max_mb, seed
        self.out: torch.Tensor | None = None
        self.matrix: torch.Tensor | None = None
        self.projection = "none"

    def add(self, start: int, features: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        g = last_layer_gradients(features, logits, y)
        if self.out is None:
            self._allocate(g.shape[1], g.dtype)
        if self.matrix is not None:
            g = g @ self.matrix.to(g.dtype)
        self.out[start:start + len(g)] = g.to(self.dtype)

    def _allocate(self, width: int, dtype: torch.dtype) -> None:
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        fits = int(self.max_mb * 2**20 // (itemsize * max(1, self.n)))
        if width > fits:
            k = max(1, fits)
            gen = torch.Generator().manual_seed(self.seed)
            self.matrix = (torch.randn(width, k, generator=gen, dtype=torch.float64) / np.sqrt(k)).to(self.device)
            self.projection, width = f"gaussian:{k}", k
        self.out = torch.empty(self.n, width, dtype=self.dtype, device=self.device)

    def numpy(self) -> np.ndarray | None:
        return None if self.out is None else self.out.cpu().numpy()
